# Types of the optional C accelerator _syscalls.c, built only where a C compiler is
# found at install time; connection.py imports it and falls back to Python without it.
#
# accept and send_more are compiled only where the system has accept4 and MSG_MORE
# (Linux; not macOS): connection.py looks them up with getattr.

# accept4(SOCK_NONBLOCK | SOCK_CLOEXEC): (descriptor, raw peer sockaddr), or None when
# no connection waits. Other errors raise OSError.
def accept(listener_fd: int, /) -> tuple[int, bytes] | None: ...

# ioctl(FIONREAD): how many bytes wait in the descriptor's receive buffer.
def unread_bytes(fd: int, /) -> int: ...

# send(MSG_MORE | MSG_NOSIGNAL): bytes sent; BlockingIOError when it would block.
def send_more(fd: int, data: bytes, /) -> int: ...
