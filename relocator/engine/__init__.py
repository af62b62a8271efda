"""
Planning and moving images between stores; progress reported as events.

No terminal code here: what the engine has to say goes through a `ProgressSink`.
"""

from __future__ import annotations

from relocator.engine import events
from relocator.engine.copy import copy_images, execute_plan, plan_images
from relocator.engine.execute import CopyOptions, image_tag
from relocator.engine.graph import BlobNode, Job, ManifestNode, Plan
from relocator.engine.groups import first_error
from relocator.engine.limits import Limits
from relocator.engine.report import ImageFailure, ImageResult, Report
from relocator.engine.shard import Shard
from relocator.engine.tags import TagConflict

__all__ = (
    "BlobNode",
    "CopyOptions",
    "ImageFailure",
    "ImageResult",
    "Job",
    "Limits",
    "ManifestNode",
    "Plan",
    "Report",
    "Shard",
    "TagConflict",
    "copy_images",
    "events",
    "execute_plan",
    "first_error",
    "image_tag",
    "plan_images",
)
