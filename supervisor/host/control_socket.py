"""The control socket's file and its peers: a unix socket bound private to the bot's user,
a stale one from an earlier run replaced (never a live one), ours removed at the end, and
who is at the other end of a connection (``SO_PEERCRED``)."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from supervisor.host.control_protocol import EXIT_ERROR, ControlError

log = logging.getLogger("botvisor")

__all__ = ["BoundSocket", "PeerCredentials", "bind_private", "check_peer", "clear_stale",
           "operator_name", "peer_credentials"]

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux


@dataclass(frozen=True, slots=True)
class BoundSocket:
    """A listening, non-blocking control socket; its file's identity (device, inode) and
    whether its directory was made for it, so that :meth:`remove_file` removes only ours."""

    sock: socket.socket
    path: Path
    inode: tuple[int, int]
    made_dir: bool

    def remove_file(self) -> None:
        """Remove the socket file if it is still ours (not a newer bot's), and the directory
        made for it if it is empty."""
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self.inode:  # ours, not a newer bot's
                self.path.unlink()
        except OSError:
            pass
        if self.made_dir:
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()  # only if empty


def bind_private(path: Path) -> BoundSocket:
    """Bind and listen on a unix socket at ``path`` only this user can use (umask 0177, then
    mode 0600; its directory made 0700 if missing). Replaces a stale socket file; raises
    ControlError for a live one, a non-socket in the way, a path too long or not writable."""
    if len(os.fsencode(str(path))) > _SUN_PATH_MAX:
        raise ControlError(f"control socket path is too long for a unix socket "
                           f"({_SUN_PATH_MAX} bytes at most): {path}")
    directory = path.parent
    made_dir = False
    if not directory.exists():
        try:
            directory.mkdir(parents=True, mode=0o700)
            os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            raise ControlError(f"cannot create {directory}: {exc.strerror}") from None
        made_dir = True
    clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # no window in which the socket is open to others
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ControlError(f"cannot bind the control socket {path}: "
                           f"{exc.strerror or exc}") from None
    finally:
        os.umask(old_umask)
    try:
        os.chmod(path, 0o600)
        st = os.stat(path)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ControlError(f"cannot set up the control socket {path}: "
                           f"{exc.strerror or exc}") from None
    return BoundSocket(sock, path, (st.st_dev, st.st_ino), made_dir)


def clear_stale(path: Path) -> None:
    """Remove a socket left by an earlier run; refuse if a live bot answers on it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(f"{path} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("control: replacing %s, left over from a run that did not clean up", path)
    except OSError as exc:
        raise ControlError(f"cannot tell whether a bot still serves {path}: "
                           f"{exc.strerror or exc}") from None
    else:
        raise ControlError(f"another botvisor is already serving {path}; "
                           "not replacing its socket")
    finally:
        probe.close()
    log.warning("control: replacing the stale socket %s", path)
    path.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """Who is at the other end of a unix socket, as the kernel reports it."""

    pid: int
    uid: int
    gid: int


def peer_credentials(conn: socket.socket) -> PeerCredentials:
    """The connected peer's pid, uid and gid (``SO_PEERCRED``)."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid)


def check_peer(peer: PeerCredentials, allowed_uid: int) -> None:
    """Refuse (ControlError, exit status 1) any peer whose uid is not ``allowed_uid``."""
    if peer.uid != allowed_uid:
        raise ControlError(
            f"permission denied: the control socket accepts only uid {allowed_uid} "
            f"(the bot's user); this connection is from uid {peer.uid}", EXIT_ERROR)


def operator_name(uid: int) -> str:
    """``cli:<user name>`` for ``uid`` (``cli:uid<N>`` when the name is unknown)."""
    try:
        return f"cli:{pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"cli:uid{uid}"
