//! Every check opens sockets in the host; none may outlive its call. This file
//! holds one test so that no other test's sockets move the count.

mod common;

use common::{free_port, listen, session};
use port_host::{Candidates, PortRange};

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("Linux exposes /proc/self/fd")
        .count()
}

#[test]
fn ten_thousand_calls_leave_the_descriptor_count_unchanged() {
    let mut session = session();
    let free = free_port();
    let held = listen(0);
    let busy = held.local_addr().unwrap().port();
    let candidates = Candidates::Range(PortRange {
        start: busy.into(),
        end: u32::from(busy) + 1,
        step: 1,
    });
    // One call of each kind first, so that lazily opened host state is counted in `before`.
    session.is_free_port(free).unwrap().unwrap();
    session.get_free_port(None, false).unwrap().unwrap();

    let before = open_descriptors();
    for i in 0..10_000 {
        match i % 4 {
            0 => assert_eq!(session.is_free_port(free).unwrap(), Ok(true)),
            1 => assert_eq!(session.is_free_port(busy).unwrap(), Ok(false)),
            2 => assert!(
                session
                    .get_free_port(Some(&candidates), true)
                    .unwrap()
                    .is_err()
            ),
            _ => assert!(session.get_free_port(None, false).unwrap().is_ok()),
        }
    }
    assert_eq!(open_descriptors(), before);
}
