"""
kbld's `--image-map-file` and `--unresolved-inspect`: a CNAB relocation mapping as
overrides, and the references found, listed without resolving them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from relocator import config
from relocator.errors import InputError


def with_image_map(inputs: config.Inputs, path: str) -> config.Inputs:
    """
    kbld's `--image-map-file`: a CNAB relocation mapping (a JSON object, each image as
    written -> its new image) as preresolved overrides after the config's own.

    Raises:
        InputError: The file is unreadable or not such an object.
    """
    try:
        mapping = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"--image-map-file {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise InputError(f"--image-map-file {path}: not JSON") from None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise InputError(
            f"--image-map-file {path}: expected a JSON object of image -> relocated image"
        )
    extra = tuple(
        config.Override(image=k, new_image=v, preresolved=True, where=path)
        for k, v in mapping.items()
    )
    found = tuple(
        f if f.override is not None
        else dataclasses.replace(f, override=next((o for o in extra if o.matches(f.value)), None))
        for f in inputs.found
    )
    merged = dataclasses.replace(inputs.config, overrides=(*inputs.config.overrides, *extra))
    return dataclasses.replace(inputs, config=merged, found=found)


def unresolved_inspect(inputs: config.Inputs) -> str:
    """kbld's `--unresolved-inspect` output: `- image: REF` per found reference, sorted."""
    values = sorted({f.value for f in inputs.found_images()})
    if not values:
        return "[]\n"
    return "".join(f"- image: {json.dumps(v) if _needs_quotes(v) else v}\n" for v in values)


def _needs_quotes(value: str) -> bool:
    # Plain references need no quoting; anything YAML could misread is quoted.
    return not value or not all(c.isalnum() or c in "./:@_-" for c in value) or value[0] in "-:@"
