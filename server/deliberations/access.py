"""Who may see and do what with a deliberation: one place, used by every route.

- an administrator: everything;
- an organiser: the deliberations they created (set up, open, pause, close, delete, invite and remove moderators);
- a moderator (or an organiser invited to someone else's deliberation): view the deliberations they are assigned to;
- anyone else: nothing, and an unknown id looks the same as a foreign one (404).

The pure rules take what they need; ``viewable``, ``may_view_room`` and ``may_manage_room`` look it up in the store
(blocking: call them off the event loop) so that every route asks the same question the same way.
"""

from __future__ import annotations

from server.accounts.service import Principal
from server.deliberations.store import DeliberationRecord, DeliberationStore

CREATORS = ("organiser", "admin")


def can_create(principal: Principal) -> bool:
    return principal.role in CREATORS


def can_manage(principal: Principal, deliberation: DeliberationRecord) -> bool:
    return principal.role == "admin" or (principal.role == "organiser"
                                         and deliberation.organiser_id == principal.user_id)


def can_view(principal: Principal, deliberation: DeliberationRecord, assigned: bool) -> bool:
    """``assigned``: the principal is one of the deliberation's moderators."""
    return can_manage(principal, deliberation) or assigned


def can_view_room(principal: Principal, created_by: str | None, deliberation: DeliberationRecord | None,
                  assigned: bool) -> bool:
    """Staff who may moderate and review a room: a deliberation's room by those who may view the deliberation
    (``assigned``: the principal moderates it); a stand-alone room by its creator; any room by an administrator."""
    if principal.role == "admin":
        return True
    if deliberation is not None:
        return can_view(principal, deliberation, assigned)
    return created_by is not None and created_by == principal.user_id


def viewable(store: DeliberationStore, principal: Principal, deliberation_id: str) -> DeliberationRecord | None:
    """The deliberation, if ``principal`` may view it; None when it is unknown or not theirs (the same answer)."""
    record = store.get(deliberation_id) if len(deliberation_id) <= 32 else None
    if record is None:
        return None
    assigned = not can_manage(principal, record) and store.is_moderator(record.id, principal.user_id)
    return record if can_view(principal, record, assigned) else None


def may_view_room(store: DeliberationStore, principal: Principal, created_by: str | None,
                  deliberation_id: str | None) -> bool:
    """Whether ``principal`` may moderate and review a room (see ``can_view_room``)."""
    if deliberation_id is None:
        return can_view_room(principal, created_by, None, False)
    return viewable(store, principal, deliberation_id) is not None or principal.role == "admin"


def may_manage_room(store: DeliberationStore, principal: Principal, created_by: str | None,
                    deliberation_id: str | None) -> bool:
    """Whether ``principal`` is the room's organiser: its deliberation's (or the stand-alone room's creator), or an
    administrator. Real names in exports are for them only."""
    if principal.role == "admin":
        return True
    if deliberation_id is None:
        return created_by is not None and created_by == principal.user_id
    record = store.get(deliberation_id)
    return record is not None and can_manage(principal, record)
