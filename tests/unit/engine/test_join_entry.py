"""The survey ↔ interaction join (stream_app/engine/join.py).

Every effect is attributed to one trigger and must be re-derivable from the entry alone, so that a
record replayed after a crash does exactly what it did the first time. Expected effects are
written out by hand.

A trigger is one integer, ``offset * 2 + kind`` (``records.trigger_of``): ``ix(10)`` is the
interaction at offset 10, ``sv(4)`` the survey at offset 4.
"""

from __future__ import annotations

from stream_app.engine import codec
from stream_app.engine.join import (
    ATTRIBUTES,
    UNKNOWN,
    Effect,
    add_interaction,
    add_survey,
    effects_of,
    new_entry,
    own_effect,
    resolve,
)
from stream_app.engine.records import INTERACTION, SURVEY, JoinEntry, trigger_of
from stream_app.scoring import delay_index

T_IX = 1_714_557_600_000  # 2024-05-01T10:00:00Z, the interaction closes
T_SV = 1_714_557_900_000  # 2024-05-01T10:05:00Z, the survey is answered

IX_DIMS = ("chat", "billing", "a-7", "support")
IX_C = ((0, 1.0), (3, 240.0))  # an interaction's stats contribution (sparse)
SV_C = ((20, 1.0), (21, 6.0))  # a survey's stats contribution (sparse)
SV2_C = ((30, 1.0), (31, 9.0))
NONE4 = (None, None, None, None)
UNKNOWN4 = (UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN)
IX_OWN = own_effect("acme", IX_DIMS, T_IX, IX_C)  # the usual interaction's own count
DELAY = ((delay_index(T_SV - T_IX), 1.0),)  # the delay bin of a survey answered 5 min after the close


def ix(offset: int) -> int:
    """The trigger of the interaction at ``offset``."""
    return trigger_of(offset, INTERACTION)


def sv(offset: int) -> int:
    """The trigger of the survey at ``offset``."""
    return trigger_of(offset, SURVEY)


def roundtrip(entry: JoinEntry) -> JoinEntry:
    """The entry as stored in the table: encoded bytes and back."""
    return codec.decode_join(codec.encode(entry))


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


def test_attributes_order_matches_dims():
    assert ATTRIBUTES == ("channel", "queue", "agent", "touchpoint")


# --- the interaction alone ---------------------------------------------------------------------


def test_interaction_alone_counts_once_under_its_attributes():
    entry = new_entry()
    effects = add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    assert effects == [Effect(1, "acme", ("chat", "billing", "a-7", "support"), T_IX, IX_C)]
    assert effects[0].only is None


def test_interaction_missing_attributes_count_under_unknown():
    entry = new_entry()
    dims = ("voice", None, None, None)
    effects = add_interaction(entry, "ev-i", ix(10), own_effect("acme", dims, T_IX, IX_C), dims)
    assert effects == [Effect(1, "acme", ("voice", "unknown", "unknown", "unknown"), T_IX, IX_C)]


# --- survey after its interaction --------------------------------------------------------------


def test_survey_after_interaction_counted_once_under_interaction_attributes():
    entry = new_entry()
    add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    effects = add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C)
    assert effects == [Effect(1, "acme", ("chat", "billing", "a-7", "support"), T_SV, SV_C + DELAY)]
    assert effects[0].only is None  # a plain count: `all` included


def test_survey_after_interaction_own_attributes_win():
    entry = new_entry()
    add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    effects = add_survey(entry, "ev-s", sv(4), "acme", ("email", None, "a-9", None), T_SV, SV_C)
    assert effects == [Effect(1, "acme", ("email", "billing", "a-9", "support"), T_SV, SV_C + DELAY)]


def test_survey_after_interaction_adds_nothing_to_the_interaction_trigger():
    entry = new_entry()
    add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C)
    own = own_effect("acme", IX_DIMS, T_IX, IX_C)
    assert effects_of(entry, ix(10), own) == [Effect(1, "acme", IX_DIMS, T_IX, IX_C)]


# --- survey before its interaction -------------------------------------------------------------


def test_survey_first_counts_under_unknown_at_once():
    entry = new_entry()
    effects = add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C)
    assert effects == [Effect(1, "acme", UNKNOWN4, T_SV, SV_C)]
    assert effects[0].only is None


def test_survey_first_keeps_its_own_attributes_while_waiting():
    entry = new_entry()
    effects = add_survey(entry, "ev-s", sv(4), "acme", (None, "vip", None, None), T_SV, SV_C)
    assert effects == [Effect(1, "acme", ("unknown", "vip", "unknown", "unknown"), T_SV, SV_C)]


def test_interaction_trigger_moves_waiting_survey_from_unknown_to_joined_keys():
    entry = new_entry()
    add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C)
    effects = add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    moved = frozenset({"channel", "queue", "agent", "touchpoint"})
    assert effects == [
        Effect(1, "acme", IX_DIMS, T_IX, IX_C),  # the interaction itself
        Effect(-1, "acme", UNKNOWN4, T_SV, SV_C, moved),  # out of unknown
        Effect(1, "acme", IX_DIMS, T_SV, SV_C, moved),  # into the joined keys
        Effect(1, "acme", IX_DIMS, T_SV, DELAY),  # the survey's delay, now known, in every scope
    ]


def test_move_is_limited_to_attributes_that_changed_and_never_all():
    entry = new_entry()
    # The survey names its queue itself, and the interaction has no touchpoint.
    add_survey(entry, "ev-s", sv(4), "acme", (None, "vip", None, None), T_SV, SV_C)
    dims = ("chat", "billing", "a-7", None)
    effects = add_interaction(entry, "ev-i", ix(10), own_effect("acme", dims, T_IX, IX_C), dims)
    moved = frozenset({"channel", "agent"})
    assert effects == [
        Effect(1, "acme", ("chat", "billing", "a-7", "unknown"), T_IX, IX_C),
        Effect(-1, "acme", ("unknown", "vip", "unknown", "unknown"), T_SV, SV_C, moved),
        Effect(1, "acme", ("chat", "vip", "a-7", "unknown"), T_SV, SV_C, moved),
        Effect(1, "acme", ("chat", "vip", "a-7", "unknown"), T_SV, DELAY),
    ]
    for effect in effects[1:3]:
        assert "all" not in effect.only
        assert "queue" not in effect.only  # the survey's own queue already counted
        assert "touchpoint" not in effect.only  # unknown before and after


def test_move_uses_survey_tenant_and_event_time():
    entry = new_entry()
    add_survey(entry, "ev-s", sv(4), "t2", NONE4, T_SV, SV_C)
    effects = add_interaction(entry, "ev-i", ix(10), own_effect("t2", IX_DIMS, T_IX, IX_C), IX_DIMS)
    assert [(e.sign, e.tenant, e.event_ms) for e in effects] == \
        [(1, "t2", T_IX), (-1, "t2", T_SV), (1, "t2", T_SV), (1, "t2", T_SV)]


def test_interaction_that_changes_nothing_moves_nothing():
    entry = new_entry()
    # The survey has channel, queue and agent; the interaction has no touchpoint to offer.
    add_survey(entry, "ev-s", sv(4), "acme", ("chat", "q", "a", None), T_SV, SV_C)
    dims = ("voice", "q2", "a2", None)
    effects = add_interaction(entry, "ev-i", ix(10), own_effect("acme", dims, T_IX, IX_C), dims)
    assert effects == [Effect(1, "acme", ("voice", "q2", "a2", "unknown"), T_IX, IX_C),
                       Effect(1, "acme", ("chat", "q", "a", "unknown"), T_SV, DELAY)]  # only the delay


def test_interaction_moves_every_waiting_survey():
    entry = new_entry()
    add_survey(entry, "ev-s1", sv(4), "acme", NONE4, T_SV, SV_C)
    add_survey(entry, "ev-s2", sv(5), "acme", ("email", None, None, None), T_SV + 1, SV2_C)
    effects = add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    all4 = frozenset(ATTRIBUTES)
    three = frozenset({"queue", "agent", "touchpoint"})
    assert effects == [
        Effect(1, "acme", IX_DIMS, T_IX, IX_C),
        Effect(-1, "acme", UNKNOWN4, T_SV, SV_C, all4),
        Effect(1, "acme", IX_DIMS, T_SV, SV_C, all4),
        Effect(1, "acme", IX_DIMS, T_SV, DELAY),
        Effect(-1, "acme", ("email", "unknown", "unknown", "unknown"), T_SV + 1, SV2_C, three),
        Effect(1, "acme", ("email", "billing", "a-7", "support"), T_SV + 1, SV2_C, three),
        Effect(1, "acme", ("email", "billing", "a-7", "support"), T_SV + 1,
               ((delay_index(T_SV + 1 - T_IX), 1.0),)),
    ]


def test_survey_first_then_interaction_nets_to_one_count_per_key():
    """Sum signs per (scope, key) over every effect: the survey is counted once, under the joined keys."""
    entry = new_entry()
    survey_effects = add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C)
    ix_effects = add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    totals: dict[tuple[str, str], int] = {}
    for effect in survey_effects + ix_effects:
        if effect.event_ms != T_SV or effect.contribution == DELAY:
            continue  # the interaction's own count, the survey's delay
        scopes = ["all", *ATTRIBUTES] if effect.only is None else [a for a in ATTRIBUTES if a in effect.only]
        for scope in scopes:
            key = "all" if scope == "all" else effect.dims[ATTRIBUTES.index(scope)]
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
    effects = add_survey(entry, "ev-s", sv(4), "acme", own, T_SV, SV_C)
    assert effects == [Effect(1, "acme", own, T_SV, SV_C)]
    # The interaction arriving later does not move it; it only tells the survey's delay.
    ix_effects = add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    assert ix_effects == [Effect(1, "acme", IX_DIMS, T_IX, IX_C), Effect(1, "acme", own, T_SV, DELAY)]


# --- replay: effects_of re-derives what a trigger did ------------------------------------------


def test_replay_of_waiting_survey_trigger_returns_unknown_even_after_join():
    entry = new_entry()
    first = add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C)
    add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    stored = roundtrip(entry)
    assert effects_of(stored, sv(4)) == first == [Effect(1, "acme", UNKNOWN4, T_SV, SV_C)]


def test_replay_of_interaction_trigger_returns_same_move_after_later_triggers():
    entry = new_entry()
    add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C)
    first = add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    # Later triggers change the entry: another survey, and a second interaction event.
    add_survey(entry, "ev-s2", sv(9), "acme", NONE4, T_SV + 60_000, SV2_C)
    voice = ("voice", None, None, None)
    add_interaction(entry, "ev-i2", ix(11), own_effect("acme", voice, T_IX + 1, IX_C), voice)
    stored = roundtrip(entry)
    all4 = frozenset(ATTRIBUTES)
    assert effects_of(stored, ix(10), own_effect("acme", IX_DIMS, T_IX, IX_C)) == first == [
        Effect(1, "acme", IX_DIMS, T_IX, IX_C),
        Effect(-1, "acme", UNKNOWN4, T_SV, SV_C, all4),
        Effect(1, "acme", IX_DIMS, T_SV, SV_C, all4),
        Effect(1, "acme", IX_DIMS, T_SV, DELAY),
    ]


def test_replay_of_survey_after_interaction_returns_joined_count():
    entry = new_entry()
    add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    first = add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C)
    add_survey(entry, "ev-s2", sv(9), "acme", ("sms", None, None, None), T_SV + 1, SV2_C)
    stored = roundtrip(entry)
    assert effects_of(stored, sv(4)) == first == [Effect(1, "acme", IX_DIMS, T_SV, SV_C + DELAY)]
    delay = ((delay_index(T_SV + 1 - T_IX), 1.0),)
    assert effects_of(stored, sv(9)) == \
        [Effect(1, "acme", ("sms", "billing", "a-7", "support"), T_SV + 1, SV2_C + delay)]


def test_replay_of_complete_survey_is_unchanged_by_later_interaction():
    entry = new_entry()
    own = ("email", "q-e", "a-1", "returns")
    first = add_survey(entry, "ev-s", sv(4), "acme", own, T_SV, SV_C)
    add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    assert effects_of(roundtrip(entry), sv(4)) == first == [Effect(1, "acme", own, T_SV, SV_C)]


def test_replay_of_every_trigger_matches_first_time():
    entry = new_entry()
    voice = ("voice", "x", "y", "z")
    ix_own = own_effect("acme", IX_DIMS, T_IX, IX_C)
    voice_own = own_effect("acme", voice, T_IX + 2, IX_C)
    steps = [
        (sv(1), None, lambda: add_survey(entry, "ev-a", sv(1), "acme", NONE4, T_SV, SV_C)),
        (sv(2), None,
         lambda: add_survey(entry, "ev-b", sv(2), "acme", (None, "vip", None, None), T_SV + 1, SV2_C)),
        (ix(3), ix_own, lambda: add_interaction(entry, "ev-c", ix(3), ix_own, IX_DIMS)),
        (sv(4), None, lambda: add_survey(entry, "ev-d", sv(4), "acme", NONE4, T_SV + 2, SV_C)),
        (ix(5), voice_own, lambda: add_interaction(entry, "ev-e", ix(5), voice_own, voice)),
    ]
    first = {trigger: (own, step()) for trigger, own, step in steps}
    stored = roundtrip(entry)
    for trigger, (own, effects) in first.items():
        assert effects_of(stored, trigger, own) == effects, trigger


def test_unknown_trigger_has_no_effects():
    entry = new_entry()
    add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    assert effects_of(entry, ix(99)) == []
    assert effects_of(entry, sv(10)) == []  # same offset, other topic


def test_entry_is_equal_after_stored_roundtrip():
    entry = new_entry()
    add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C)
    add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    assert roundtrip(entry) == entry


# --- ids and bookkeeping -----------------------------------------------------------------------


def test_new_entry_is_empty():
    assert new_entry() == JoinEntry(last_ms=0, seen={}, interaction=None, surveys=[])


def test_seen_records_trigger_per_event_id():
    entry = new_entry()
    add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C)
    add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    add_survey(entry, "ev-s2", sv(7), "acme", NONE4, T_SV + 5, SV2_C)
    assert entry.seen == {"ev-s": sv(4), "ev-i": ix(10), "ev-s2": sv(7)}


def test_last_ms_is_highest_event_time_seen():
    entry = new_entry()
    add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C)
    add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)  # earlier event time
    assert entry.last_ms == T_SV


def test_first_interaction_stays_the_join_base():
    entry = new_entry()
    add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    later = ("voice", "q", "a", "t")
    add_interaction(entry, "ev-i2", ix(11), own_effect("acme", later, T_IX + 1, IX_C), later)
    effects = add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C)
    assert effects == [Effect(1, "acme", IX_DIMS, T_SV, SV_C + DELAY)]  # delay from the first close too


# --- survey delay: counted once, by the trigger that brings survey and interaction together -----


def test_survey_delay_is_counted_once_whichever_arrives_first():
    for survey_first in (True, False):
        entry = new_entry()
        survey = add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C) if survey_first else []
        effects = survey + add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
        if not survey_first:
            effects += add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C)
        delays = [e for e in effects if DELAY[0] in e.contribution]
        assert len(delays) == 1 and delays[0].dims == IX_DIMS and delays[0].only is None


def test_survey_delay_bin_is_answered_at_minus_closed_at():
    entry = new_entry()
    add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    effects = add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_IX + 3_600_000, SV_C)
    assert effects[0].contribution == SV_C + ((delay_index(3_600_000), 1.0),)


def test_survey_answered_before_the_close_counts_in_the_first_delay_bin():
    entry = new_entry()
    add_interaction(entry, "ev-i", ix(10), IX_OWN, IX_DIMS)
    effects = add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_IX - 5_000, SV_C)
    assert effects[0].contribution == SV_C + ((delay_index(0), 1.0),)


def test_entry_stored_before_close_times_were_kept_counts_no_delay():
    old = codec.encode([T_IX, {"ev-i": ix(10)}, [ix(10), list(IX_DIMS)], []])  # InteractionRef of 2 fields
    entry = codec.decode_join(old)
    assert entry.interaction is not None and entry.interaction.closed_ms is None
    assert add_survey(entry, "ev-s", sv(4), "acme", NONE4, T_SV, SV_C) == \
        [Effect(1, "acme", IX_DIMS, T_SV, SV_C)]
