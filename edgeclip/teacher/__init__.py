"""CLIP teachers: open_clip wrapper, zero-shot heads, on-disk output cache, the proxy teacher."""

from edgeclip.teacher.clip_teacher import PROXY_TEACHERS, ClipTeacher, ZeroShotHead
from edgeclip.teacher import proxy as _proxy  # noqa: F401  (registers proxy-digits)

__all__ = ["ClipTeacher", "ZeroShotHead", "PROXY_TEACHERS"]
