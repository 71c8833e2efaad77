"""Change tracking against the last sync (docs/rules.md#processor-states).

Instead of the seed's in-memory ``_original`` snapshot, each synced item stores its tracked fields as last synced in
``processor.syncedFields``. That survives a round trip through storage, tells an edit from a no-op, and lets
``revert`` undo edits that never reached the processor (the original library's resetProcessor kept them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from pydantic import JsonValue

from usercredits.errors import ConflictError
from usercredits.subscriptions.models import ProcessorItem, ProcessorState, SyncableModel

_TRACKABLE = frozenset({ProcessorState.SAVED, ProcessorState.CHANGED})


def tracked_snapshot(item: SyncableModel) -> dict[str, JsonValue]:
    """The item's tracked fields in JSON form (what ``processor.syncedFields`` holds after a sync)."""
    dumped: dict[str, JsonValue] = item.model_dump(mode="json", include=set(item.tracked_fields))
    return dumped


def mark_saved[S: SyncableModel](item: S, processor_id: str) -> S:
    """The item in step with the processor object ``processor_id``: state saved, tracked fields recorded as synced.

    Adapters call it after a successful create/update and for every item loaded from the processor.
    """
    processor = ProcessorItem(id=processor_id, state=ProcessorState.SAVED, synced_fields=tracked_snapshot(item))
    return item.model_copy(update={"processor": processor})


def track[S: SyncableModel](item: S) -> S:
    """The seed's markChanged for one item: a synced item whose tracked fields differ from the synced ones becomes
    ``changed``; one whose edits were undone goes back to ``saved``. Initial and local items are left alone."""
    processor = item.processor
    if processor.id is None or processor.state not in _TRACKABLE or processor.synced_fields is None:
        return item
    state = ProcessorState.SAVED if tracked_snapshot(item) == processor.synced_fields else ProcessorState.CHANGED
    if state is processor.state:
        return item
    return item.model_copy(update={"processor": processor.model_copy(update={"state": state})})


def keep_edits[S: SyncableModel](recorded: S, local: S, base: dict[str, JsonValue] | None) -> S:
    """``recorded`` (the item as the processor just gave it, state saved) with ``local``'s edits put back on top.

    An edit is a tracked field of ``local`` differing from ``base`` (what was last synced, or what was just sent):
    it keeps its local value and the item is ``changed`` again, so the next sync still sends it. Without edits
    (or a base) the recorded item is returned as is.
    """
    if base is None:
        return recorded
    current = tracked_snapshot(local)
    edits = {field: getattr(local, field) for field in local.tracked_fields if current.get(field) != base.get(field)}
    return track(recorded.model_copy(update=edits)) if edits else recorded


def revert[S: SyncableModel](item: S) -> S:
    """A ``changed`` item back to its synced field values and state ``saved`` (other items are returned as is)."""
    processor = item.processor
    if processor.state is not ProcessorState.CHANGED or processor.synced_fields is None:
        return item
    restored = {**item.model_dump(), **processor.synced_fields}
    restored["processor"] = processor.model_copy(update={"state": ProcessorState.SAVED})
    return type(item).model_validate(restored)


def synced_value(item: SyncableModel, field: str) -> JsonValue:
    """A tracked field as last synced (JSON form), or None when the item was never synced."""
    synced = item.processor.synced_fields
    return None if synced is None else synced.get(field)


class _ProcessorMirror(Protocol):
    """Anything with a local id and a processor side (syncable items and transactions)."""

    @property
    def local_id(self) -> str: ...

    @property
    def processor(self) -> ProcessorItem: ...


def validate_is_saved[T: _ProcessorMirror](item: T | None, name: str | None = None) -> T:
    """The item if it exists at the processor and is in step with it (the seed's validateIsSaved).

    Raises ``ConflictError("<name> not saved to processor")`` when the item, its processor id or the saved state is
    missing: the processor operation has to wait for a sync.
    """
    label = name or "Item"
    if item is None or item.processor.id is None or item.processor.state is not ProcessorState.SAVED:
        raise ConflictError(f"{label} not saved to processor")
    return item


def local_id_for(processor_id: str | None, items: Iterable[_ProcessorMirror]) -> str | None:
    """The local id of the item mirroring processor object ``processor_id``, or None (the seed's getId)."""
    if processor_id is None:
        return None
    return next((item.local_id for item in items if item.processor.id == processor_id), None)


def processor_id_for(local_id: str | None, items: Iterable[_ProcessorMirror]) -> str | None:
    """The processor id of the item with local id ``local_id``, or None (the seed's getProcessorId)."""
    if local_id is None:
        return None
    return next((item.processor.id for item in items if item.local_id == local_id), None)
