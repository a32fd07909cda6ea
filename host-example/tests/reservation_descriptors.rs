//! Reserving opens sockets in the host; ending a reservation in any way must
//! close them. This file holds one test so that no other test's sockets move
//! the count.

mod common;

use common::{block, free_block, session};

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("Linux exposes /proc/self/fd")
        .count()
}

#[test]
fn ten_thousand_reserve_and_release_cycles_leave_the_descriptor_count_unchanged() {
    let start = free_block(4);
    let ports = block(start, 4);
    let mut session = session();
    // One cycle first, so that lazily opened host state is counted in `before`.
    let warm = session.reserve_port(Some(&ports), true).unwrap().unwrap();
    session.release(&warm).unwrap().unwrap();
    session.drop_reservation(warm).unwrap();

    let before = open_descriptors();
    for i in 0..10_000 {
        let reservation = session.reserve_port(Some(&ports), true).unwrap().unwrap();
        // Every way a reservation ends: released, dropped, socket taken and closed.
        match i % 3 {
            0 => {
                session.release(&reservation).unwrap().unwrap();
                session.drop_reservation(reservation).unwrap();
            }
            1 => session.drop_reservation(reservation).unwrap(),
            _ => {
                let socket = session.take_socket(&reservation).unwrap().unwrap();
                session.close_socket(socket).unwrap();
                session.drop_reservation(reservation).unwrap();
            }
        }
    }
    assert_eq!(open_descriptors(), before);
}
