"""The survey ↔ interaction join (stream_app/join.py).

Every effect is attributed to one trigger and must be re-derivable from the entry alone, so that a
record replayed after a crash does exactly what it did the first time. Expected effects are
written out by hand.
"""

from __future__ import annotations

import orjson

from stream_app.join import (
    ATTRS,
    UNKNOWN,
    Effect,
    add_interaction,
    add_survey,
    effects_of,
    new_entry,
    own_effect,
    resolve,
)

T_IX = 1_714_557_600_000  # 2024-05-01T10:00:00Z, the interaction closes
T_SV = 1_714_557_900_000  # 2024-05-01T10:05:00Z, the survey is answered

IX_DIMS = ("chat", "billing", "a-7", "support")
IX_C = [[0, 1.0], [3, 240.0]]  # an interaction's stats contribution (sparse)
SV_C = [[20, 1.0], [21, 6.0]]  # a survey's stats contribution (sparse)
SV2_C = [[30, 1.0], [31, 9.0]]
NONE4 = (None, None, None, None)
UNKNOWN4 = (UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN)


def roundtrip(entry: dict) -> dict:
    """The entry as stored in the table: JSON bytes and back."""
    return orjson.loads(orjson.dumps(entry))


# --- resolve -----------------------------------------------------------------------------------


def test_resolve_fills_missing_attributes_with_unknown():
    assert resolve(NONE4, None) == ("unknown", "unknown", "unknown", "unknown")
    assert resolve(("voice", None, "a-1", None), None) == ("voice", "unknown", "a-1", "unknown")


def test_resolve_empty_string_counts_as_missing():
    assert resolve(("", None, None, None), None) == ("unknown", "unknown", "unknown", "unknown")


def test_resolve_takes_interaction_attributes_where_survey_has_none():
    assert resolve(NONE4, IX_DIMS) == ("chat", "billing", "a-7", "support")


def test_resolve_survey_own_attributes_win_over_interaction():
    assert resolve(("email", None, None, "returns"), IX_DIMS) == ("email", "billing", "a-7", "returns")


def test_resolve_unknown_where_neither_has_it():
    assert resolve((None, None, None, None), ("chat", None, None, None)) == (
        "chat", "unknown", "unknown", "unknown")


def test_attrs_order_matches_dims():
    assert ATTRS == ("channel", "queue", "agent", "touchpoint")


# --- the interaction alone ---------------------------------------------------------------------


def test_interaction_alone_counts_once_under_its_attributes():
    entry = new_entry()
    effects = add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    assert effects == [Effect(1, "acme", ("chat", "billing", "a-7", "support"), T_IX, IX_C)]
    assert effects[0].only is None


def test_interaction_missing_attributes_count_under_unknown():
    entry = new_entry()
    effects = add_interaction(entry, "ev-i", "i:10", "acme", ("voice", None, None, None), T_IX, IX_C)
    assert effects == [Effect(1, "acme", ("voice", "unknown", "unknown", "unknown"), T_IX, IX_C)]


# --- survey after its interaction --------------------------------------------------------------


def test_survey_after_interaction_counted_once_under_interaction_attributes():
    entry = new_entry()
    add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    effects = add_survey(entry, "ev-s", "s:4", "acme", NONE4, T_SV, SV_C)
    assert effects == [Effect(1, "acme", ("chat", "billing", "a-7", "support"), T_SV, SV_C)]
    assert effects[0].only is None  # a plain count: `all` included


def test_survey_after_interaction_own_attributes_win():
    entry = new_entry()
    add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    effects = add_survey(entry, "ev-s", "s:4", "acme", ("email", None, "a-9", None), T_SV, SV_C)
    assert effects == [Effect(1, "acme", ("email", "billing", "a-9", "support"), T_SV, SV_C)]


def test_survey_after_interaction_adds_nothing_to_the_interaction_trigger():
    entry = new_entry()
    add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    add_survey(entry, "ev-s", "s:4", "acme", NONE4, T_SV, SV_C)
    own = own_effect("acme", IX_DIMS, T_IX, IX_C)
    assert effects_of(entry, "i:10", own) == [Effect(1, "acme", IX_DIMS, T_IX, IX_C)]


# --- survey before its interaction -------------------------------------------------------------


def test_survey_first_counts_under_unknown_at_once():
    entry = new_entry()
    effects = add_survey(entry, "ev-s", "s:4", "acme", NONE4, T_SV, SV_C)
    assert effects == [Effect(1, "acme", UNKNOWN4, T_SV, SV_C)]
    assert effects[0].only is None


def test_survey_first_keeps_its_own_attributes_while_waiting():
    entry = new_entry()
    effects = add_survey(entry, "ev-s", "s:4", "acme", (None, "vip", None, None), T_SV, SV_C)
    assert effects == [Effect(1, "acme", ("unknown", "vip", "unknown", "unknown"), T_SV, SV_C)]


def test_interaction_trigger_moves_waiting_survey_from_unknown_to_joined_keys():
    entry = new_entry()
    add_survey(entry, "ev-s", "s:4", "acme", NONE4, T_SV, SV_C)
    effects = add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    moved = frozenset({"channel", "queue", "agent", "touchpoint"})
    assert effects == [
        Effect(1, "acme", IX_DIMS, T_IX, IX_C),  # the interaction itself
        Effect(-1, "acme", UNKNOWN4, T_SV, SV_C, moved),  # out of unknown
        Effect(1, "acme", IX_DIMS, T_SV, SV_C, moved),  # into the joined keys
    ]


def test_move_is_limited_to_attributes_that_changed_and_never_all():
    entry = new_entry()
    # The survey names its queue itself, and the interaction has no touchpoint.
    add_survey(entry, "ev-s", "s:4", "acme", (None, "vip", None, None), T_SV, SV_C)
    effects = add_interaction(entry, "ev-i", "i:10", "acme", ("chat", "billing", "a-7", None), T_IX, IX_C)
    moved = frozenset({"channel", "agent"})
    assert effects == [
        Effect(1, "acme", ("chat", "billing", "a-7", "unknown"), T_IX, IX_C),
        Effect(-1, "acme", ("unknown", "vip", "unknown", "unknown"), T_SV, SV_C, moved),
        Effect(1, "acme", ("chat", "vip", "a-7", "unknown"), T_SV, SV_C, moved),
    ]
    for effect in effects[1:]:
        assert "all" not in effect.only
        assert "queue" not in effect.only  # the survey's own queue already counted
        assert "touchpoint" not in effect.only  # unknown before and after


def test_move_uses_survey_tenant_and_event_time():
    entry = new_entry()
    add_survey(entry, "ev-s", "s:4", "t2", NONE4, T_SV, SV_C)
    effects = add_interaction(entry, "ev-i", "i:10", "t2", IX_DIMS, T_IX, IX_C)
    assert [(e.sign, e.tenant, e.event_ms) for e in effects] == [(1, "t2", T_IX), (-1, "t2", T_SV), (1, "t2", T_SV)]


def test_interaction_that_changes_nothing_moves_nothing():
    entry = new_entry()
    # The survey has channel, queue and agent; the interaction has no touchpoint to offer.
    add_survey(entry, "ev-s", "s:4", "acme", ("chat", "q", "a", None), T_SV, SV_C)
    effects = add_interaction(entry, "ev-i", "i:10", "acme", ("voice", "q2", "a2", None), T_IX, IX_C)
    assert effects == [Effect(1, "acme", ("voice", "q2", "a2", "unknown"), T_IX, IX_C)]


def test_interaction_moves_every_waiting_survey():
    entry = new_entry()
    add_survey(entry, "ev-s1", "s:4", "acme", NONE4, T_SV, SV_C)
    add_survey(entry, "ev-s2", "s:5", "acme", ("email", None, None, None), T_SV + 1, SV2_C)
    effects = add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    all4 = frozenset(ATTRS)
    three = frozenset({"queue", "agent", "touchpoint"})
    assert effects == [
        Effect(1, "acme", IX_DIMS, T_IX, IX_C),
        Effect(-1, "acme", UNKNOWN4, T_SV, SV_C, all4),
        Effect(1, "acme", IX_DIMS, T_SV, SV_C, all4),
        Effect(-1, "acme", ("email", "unknown", "unknown", "unknown"), T_SV + 1, SV2_C, three),
        Effect(1, "acme", ("email", "billing", "a-7", "support"), T_SV + 1, SV2_C, three),
    ]


def test_survey_first_then_interaction_nets_to_one_count_per_key():
    """Sum signs per (scope, key) over every effect: the survey is counted once, under the joined keys."""
    entry = new_entry()
    survey_effects = add_survey(entry, "ev-s", "s:4", "acme", NONE4, T_SV, SV_C)
    ix_effects = add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    totals: dict[tuple[str, str], int] = {}
    for effect in survey_effects + ix_effects:
        if effect.event_ms != T_SV:
            continue  # the interaction's own count
        scopes = ["all", *ATTRS] if effect.only is None else [a for a in ATTRS if a in effect.only]
        for scope in scopes:
            key = "all" if scope == "all" else effect.dims[ATTRS.index(scope)]
            totals[(scope, key)] = totals.get((scope, key), 0) + effect.sign
    assert {k: v for k, v in totals.items() if v} == {
        ("all", "all"): 1,
        ("channel", "chat"): 1,
        ("queue", "billing"): 1,
        ("agent", "a-7"): 1,
        ("touchpoint", "support"): 1,
    }


# --- complete surveys never wait ---------------------------------------------------------------


def test_survey_with_all_four_attributes_never_waits():
    entry = new_entry()
    own = ("email", "q-e", "a-1", "returns")
    effects = add_survey(entry, "ev-s", "s:4", "acme", own, T_SV, SV_C)
    assert effects == [Effect(1, "acme", own, T_SV, SV_C)]
    # The interaction arriving later does not move it.
    ix_effects = add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    assert ix_effects == [Effect(1, "acme", IX_DIMS, T_IX, IX_C)]


# --- replay: effects_of re-derives what a trigger did ------------------------------------------


def test_replay_of_waiting_survey_trigger_returns_unknown_even_after_join():
    entry = new_entry()
    first = add_survey(entry, "ev-s", "s:4", "acme", NONE4, T_SV, SV_C)
    add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    stored = roundtrip(entry)
    assert effects_of(stored, "s:4") == first == [Effect(1, "acme", UNKNOWN4, T_SV, SV_C)]


def test_replay_of_interaction_trigger_returns_same_move_after_later_triggers():
    entry = new_entry()
    add_survey(entry, "ev-s", "s:4", "acme", NONE4, T_SV, SV_C)
    first = add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    # Later triggers change the entry: another survey, and a second interaction event.
    add_survey(entry, "ev-s2", "s:9", "acme", NONE4, T_SV + 60_000, SV2_C)
    add_interaction(entry, "ev-i2", "i:11", "acme", ("voice", None, None, None), T_IX + 1, IX_C)
    stored = roundtrip(entry)
    all4 = frozenset(ATTRS)
    assert effects_of(stored, "i:10", own_effect("acme", IX_DIMS, T_IX, IX_C)) == first == [
        Effect(1, "acme", IX_DIMS, T_IX, IX_C),
        Effect(-1, "acme", UNKNOWN4, T_SV, SV_C, all4),
        Effect(1, "acme", IX_DIMS, T_SV, SV_C, all4),
    ]


def test_replay_of_survey_after_interaction_returns_joined_count():
    entry = new_entry()
    add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    first = add_survey(entry, "ev-s", "s:4", "acme", NONE4, T_SV, SV_C)
    add_survey(entry, "ev-s2", "s:9", "acme", ("sms", None, None, None), T_SV + 1, SV2_C)
    stored = roundtrip(entry)
    assert effects_of(stored, "s:4") == first == [Effect(1, "acme", IX_DIMS, T_SV, SV_C)]
    assert effects_of(stored, "s:9") == [Effect(1, "acme", ("sms", "billing", "a-7", "support"), T_SV + 1, SV2_C)]


def test_replay_of_complete_survey_is_unchanged_by_later_interaction():
    entry = new_entry()
    own = ("email", "q-e", "a-1", "returns")
    first = add_survey(entry, "ev-s", "s:4", "acme", own, T_SV, SV_C)
    add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    assert effects_of(roundtrip(entry), "s:4") == first == [Effect(1, "acme", own, T_SV, SV_C)]


def test_replay_of_every_trigger_matches_first_time():
    entry = new_entry()
    voice = ("voice", "x", "y", "z")
    steps = [
        ("s:1", None, lambda: add_survey(entry, "ev-a", "s:1", "acme", NONE4, T_SV, SV_C)),
        ("s:2", None, lambda: add_survey(entry, "ev-b", "s:2", "acme", (None, "vip", None, None), T_SV + 1, SV2_C)),
        ("i:3", own_effect("acme", IX_DIMS, T_IX, IX_C),
         lambda: add_interaction(entry, "ev-c", "i:3", "acme", IX_DIMS, T_IX, IX_C)),
        ("s:4", None, lambda: add_survey(entry, "ev-d", "s:4", "acme", NONE4, T_SV + 2, SV_C)),
        ("i:5", own_effect("acme", voice, T_IX + 2, IX_C),
         lambda: add_interaction(entry, "ev-e", "i:5", "acme", voice, T_IX + 2, IX_C)),
    ]
    first = {trigger: (own, step()) for trigger, own, step in steps}
    stored = roundtrip(entry)
    for trigger, (own, effects) in first.items():
        assert effects_of(stored, trigger, own) == effects, trigger


def test_unknown_trigger_has_no_effects():
    entry = new_entry()
    add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    assert effects_of(entry, "i:99") == []
    assert effects_of(entry, "s:10") == []  # same offset, other topic


def test_entry_is_json_able_and_equal_after_roundtrip():
    entry = new_entry()
    add_survey(entry, "ev-s", "s:4", "acme", NONE4, T_SV, SV_C)
    add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    assert roundtrip(entry) == entry


# --- ids and bookkeeping -----------------------------------------------------------------------


def test_new_entry_is_empty():
    assert new_entry() == {"ids": {}, "ix": None, "sv": [], "last": 0}


def test_ids_map_records_trigger_per_event_id():
    entry = new_entry()
    add_survey(entry, "ev-s", "s:4", "acme", NONE4, T_SV, SV_C)
    add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    add_survey(entry, "ev-s2", "s:7", "acme", NONE4, T_SV + 5, SV2_C)
    assert entry["ids"] == {"ev-s": "s:4", "ev-i": "i:10", "ev-s2": "s:7"}


def test_last_is_highest_event_time_seen():
    entry = new_entry()
    add_survey(entry, "ev-s", "s:4", "acme", NONE4, T_SV, SV_C)
    add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)  # earlier event time
    assert entry["last"] == T_SV


def test_first_interaction_stays_the_join_base():
    entry = new_entry()
    add_interaction(entry, "ev-i", "i:10", "acme", IX_DIMS, T_IX, IX_C)
    add_interaction(entry, "ev-i2", "i:11", "acme", ("voice", "q", "a", "t"), T_IX + 1, IX_C)
    effects = add_survey(entry, "ev-s", "s:4", "acme", NONE4, T_SV, SV_C)
    assert effects == [Effect(1, "acme", IX_DIMS, T_SV, SV_C)]
