//! Descriptors across a Unix socket (SCM_RIGHTS): the `socket` request's
//! listening sockets travel this way. Plain `libc`, already in the build
//! through tokio: one `sendmsg` and one `recvmsg` do not need a crate.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The most descriptors one message carries here (Linux allows 253).
pub const MAX_FDS: usize = 64;

/// Control-message space for `count` descriptors.
fn space(count: usize) -> usize {
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    unsafe { libc::CMSG_SPACE((count * size_of::<RawFd>()) as u32) as usize }
}

/// Sends `bytes` with `fds` attached, in one `sendmsg`. Returns the bytes
/// sent (a stream socket may take fewer; the callers' replies are a few
/// bytes on a fresh connection, which it takes whole).
pub fn send(socket: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    if fds.len() > MAX_FDS || bytes.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "1 to 64 descriptors with some bytes",
        ));
    }
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // u64 elements keep the buffer aligned for cmsghdr.
    let mut control = vec![0u64; space(fds.len()).div_ceil(8)];
    // SAFETY: zeroed msghdr is valid; every pointer set below outlives the
    // call, and the control buffer holds CMSG_SPACE(fds) bytes, which is
    // what CMSG_FIRSTHDR and CMSG_DATA address.
    unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        if !fds.is_empty() {
            message.msg_control = control.as_mut_ptr().cast();
            message.msg_controllen = space(fds.len()) as _;
            let header = libc::CMSG_FIRSTHDR(&message);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN((fds.len() * size_of::<RawFd>()) as u32) as _;
            let data = libc::CMSG_DATA(header).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
        let sent = libc::sendmsg(socket.as_raw_fd(), &message, libc::MSG_NOSIGNAL);
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }
}

/// Receives into `buffer` and takes up to [`MAX_FDS`] descriptors that come
/// with it (close-on-exec). Returns the bytes read and the descriptors.
pub fn receive(socket: BorrowedFd<'_>, buffer: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    let mut control = vec![0u64; space(MAX_FDS).div_ceil(8)];
    // SAFETY: as in `send`; the kernel writes at most msg_controllen bytes
    // of control data, and each descriptor it installs is ours to own.
    unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = space(MAX_FDS) as _;
        let read = libc::recvmsg(socket.as_raw_fd(), &mut message, libc::MSG_CMSG_CLOEXEC);
        if read < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut fds = Vec::new();
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header).cast::<RawFd>();
                let bytes = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
        if message.msg_flags & libc::MSG_CTRUNC != 0 {
            // Descriptors that did not fit were closed by the kernel; a
            // partial set is no answer.
            return Err(io::Error::other(
                "more descriptors came than a reply may carry",
            ));
        }
        Ok((read as usize, fds))
    }
}
