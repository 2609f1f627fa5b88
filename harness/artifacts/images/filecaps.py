"""File capabilities as the kernel stores them: the `security.capability` extended attribute.

`setcap cap_net_bind_service=+ep FILE` writes a struct vfs_cap_data (linux/capability.h,
revision 2): a little-endian magic with the effective flag, then the permitted and inheritable
masks of capabilities 0-31 and 32-63. An image layer carries it as an xattr of the file, so a
non-root process gets the capability at exec, within the container's bounding set (the pod's
`capabilities.add`). With `allowPrivilegeEscalation: false` (no_new_privs) the kernel still grants
it, capped by what the runtime put in the process's permitted set before exec.

Why it is needed: containerd 1.6 gives a non-root container its added capabilities only in the
bounding, permitted and effective sets of runc's init, which execve drops for a non-root user; it
sets no ambient capabilities. Without the file capability, a non-root process cannot bind :80.
"""

from __future__ import annotations

import struct

XATTR = "security.capability"
VFS_CAP_REVISION_2 = 0x02000000
VFS_CAP_FLAGS_EFFECTIVE = 0x000001
# The few capabilities an image in this lab may carry (linux/capability.h numbers).
CAPABILITIES = {"CAP_NET_BIND_SERVICE": 10}


def vfs_cap_data(names: tuple[str, ...] | list[str], effective: bool = True) -> bytes:
    """The xattr value granting `names` permitted (and effective, when `effective`)."""
    permitted = [0, 0]
    for name in names:
        number = CAPABILITIES[name]
        permitted[number // 32] |= 1 << (number % 32)
    magic = VFS_CAP_REVISION_2 | (VFS_CAP_FLAGS_EFFECTIVE if effective else 0)
    return struct.pack("<5I", magic, permitted[0], 0, permitted[1], 0)


def parse_vfs_cap_data(value: bytes) -> tuple[list[str], bool]:
    """(capability names, effective) of an xattr value; for tests and verification."""
    magic, lo, _, hi, _ = struct.unpack("<5I", value)
    if magic & 0xFF000000 != VFS_CAP_REVISION_2:
        raise ValueError(f"not a revision 2 vfs_cap_data: magic {magic:#x}")
    mask = lo | (hi << 32)
    names = [name for name, number in CAPABILITIES.items() if mask & (1 << number)]
    return names, bool(magic & VFS_CAP_FLAGS_EFFECTIVE)
