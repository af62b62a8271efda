"""`resolve`: every reference the inputs name, resolved to a digest, in the rewritten YAML."""

from __future__ import annotations

from relocator import config
from relocator.engine.events import Notice
from relocator.engine.resolve import Resolution, resolve_each
from relocator.errors import InputError
from relocator.oci import Platform, Reference, shown
from relocator.store import RegistryStore

from .imagemap import unresolved_inspect, with_image_map
from .inputs import load, parse_reference, write_locks
from .registries import transport_settings
from .requests import ResolveRequest
from .result import Result
from .session import Session


async def resolve(request: ResolveRequest, session: Session) -> Result:
    """Resolve every found reference to a digest; write the locks; give the YAML."""
    inputs = load(request.files, session, max_bytes=request.max_input_bytes,
                  stdin=request.stdin)
    if request.image_map:
        inputs = with_image_map(inputs, request.image_map)
    if request.unresolved_inspect:
        return Result(yaml=unresolved_inspect(inputs))
    platform = Platform.parse(request.platform) if request.platform else None
    final: dict[str, str] = {}
    # What kbld records of each image: the lock, tag or index it came from.
    origins: dict[str, tuple[config.Origin, ...]] = {}
    pending: dict[str, Resolution] = {}
    selections: dict[str, tuple[Reference, config.TagSelection]] = {}
    for found in inputs.found_images():
        override = found.override
        if override is not None and override.preresolved:
            final[found.value] = override.new_image
            origins[found.value] = (*override.origins, config.preresolved(override.new_image))
            continue
        target = override.new_image if override is not None else found.value
        wanted = override.platform if override is not None and override.platform else platform
        reference = parse_reference(target, found.where)
        if override is not None and override.tag_selection is not None:
            selections[found.value] = (reference, override.tag_selection)
        if reference.digest is None:
            origins[found.value] = (config.resolved(target, reference.tag),)
        pending[found.value] = Resolution(reference=reference, platform=wanted)
    if pending:
        settings = transport_settings(request.registries)
        async with session.client(request.registries, settings, destination=None) as client:
            store = RegistryStore(client)
            for value, (reference, selection) in selections.items():
                chosen = await _select_tag(store, reference, selection, session)
                session.log(f"selected: {value} -> {chosen}")
                pending[value] = Resolution(reference=chosen, platform=pending[value].platform)
                origins[value] = (config.resolved(str(chosen), chosen.tag),)
            results = await resolve_each(list(pending.values()), store)
        for value, wanted_one in pending.items():
            result = results[wanted_one]
            final[value] = str(result.reference)
            if result.index is not None and wanted_one.platform is not None:
                picked = config.platform_selected(str(result.index), wanted_one.platform)
                origins[value] = (*origins.get(value, ()), picked)
    for value in sorted(final):
        session.log(f"final: {value} -> {final[value]}")
    kept = origins if request.origins_annotation else {}
    write_locks(request.locks, [(value, final[value]) for value in final], inputs, origins=kept)
    yaml = inputs.render(final, origins=origins if request.images_annotation else None)
    return Result(yaml=yaml, hosts=session.hosts())


async def _select_tag(
    store: RegistryStore, reference: Reference, selection: config.TagSelection,
    session: Session,
) -> Reference:
    """
    The tag of `reference`'s repository an override's `tagSelection` chooses; listed
    names that are not tags are skipped with a warning.
    """
    listing = await store.tags(reference.repo)
    for refused in listing.refused:
        session.emit(Notice(f"skipped {shown(refused)} listed by {reference.repo}: not a valid tag"))
    tag = selection.pick(listing.tags)
    if tag is None:
        raise InputError(
            f"no tag of {reference.repo} matches tagSelection semver "
            f"'{selection.constraints or '*'}'"
            + (" (prereleases allowed)" if selection.prereleases else ""),
        )
    return Reference.from_repo(reference.repo, tag=tag)
