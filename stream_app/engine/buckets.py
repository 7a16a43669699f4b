"""A batch's effects into time buckets: summed per (tenant, attributes, minute) first, then fanned out.

Per record the intake only adds its effect to one group; the fan-out to scopes (5 dimensions) and
bucket widths (3 by default) runs once per batch, with numpy for the new records. A replayed record
(seen before a crash) stays in a group of its own and is checked bucket by bucket against what the
bucket held before this batch.

Sums stay whole numbers (scoring keeps every statistic integral), so float addition is exact in any
order and the numpy path gives the same buckets as adding record by record.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

import numpy as np

from stream_app import scoring
from stream_app.engine import codec
from stream_app.engine.join import ATTRIBUTES, Effect
from stream_app.engine.records import STATS_DTYPE, Bucket, FullDims, Scope

BucketId = tuple[Scope, int, int]  # scope, width, start
GroupKey = tuple[str, FullDims, frozenset[str] | None, int]  # tenant, attributes, moved attributes, minute
# A dimension is named as the attribute it groups by.
_ATTRIBUTE_INDEX = {name: index for index, name in enumerate(ATTRIBUTES)}


class Groups:
    """The effects of one partition's batch: new records as columns for numpy, replayed ones summed
    per record so that each can be checked against the buckets it reaches."""

    __slots__ = ("cols", "grid_ms", "index", "minutes", "owner", "profiles", "replayed", "vals")

    def __init__(self, index: ScopeIndex, grid_ms: int) -> None:
        self.index = index
        self.grid_ms = grid_ms
        self.profiles: list[int] = []  # per effect: its (tenant, attributes, moved attributes)
        self.minutes: list[int] = []  # per effect: its time on the grid
        self.owner: list[int] = []  # per statistic added: the effect it belongs to
        self.cols: list[int] = []  # per statistic added: its index in the stats vector
        self.vals: list[float] = []
        self.replayed: dict[tuple[GroupKey, int], list[float]] = {}  # (group, trigger) -> sums

    def add_new(self, tenant: str, dims: FullDims, event_ms: int, cols: Sequence[int],
                vals: Sequence[float]) -> None:
        """A new record's own effect (counted in every dimension), as columns."""
        effect = len(self.profiles)
        self.profiles.append(self.index.profile(tenant, dims, None))
        self.minutes.append(event_ms - event_ms % self.grid_ms)
        self.cols.extend(cols)
        self.vals.extend(vals)
        self.owner.extend([effect] * len(cols))

    def add(self, effects: Iterable[Effect], replayed: int | None) -> None:
        """Add a record's effects; ``replayed`` is its trigger when it may have been applied before."""
        grid = self.grid_ms
        for sign, tenant, dims, event_ms, contribution, only in effects:
            minute = event_ms - event_ms % grid
            if replayed is not None:
                stats = self.replayed.get(((tenant, dims, only, minute), replayed))
                if stats is None:
                    stats = self.replayed[((tenant, dims, only, minute), replayed)] = scoring.empty()
                for index, value in contribution:
                    stats[index] += sign * value
                continue
            effect = len(self.profiles)
            self.profiles.append(self.index.profile(tenant, dims, only))
            self.minutes.append(minute)
            if contribution:
                cols, vals = zip(*contribution, strict=True)
                self.cols.extend(cols)
                self.vals.extend(vals if sign == 1 else (-v for v in vals))
                self.owner.extend([effect] * len(cols))


class ScopeIndex:
    """Every scope a partition has fanned out to, numbered, and for each (tenant, attributes, moved
    attributes) the numbers of the scopes it counts in, one column per dimension (-1: none).

    Kept for the partition's life: the same few hundred attribute combinations recur in every batch,
    and their scopes need working out only once.
    """

    def __init__(self, dimensions: tuple[str, ...]) -> None:
        self.dimensions = dimensions
        self.scopes: list[Scope] = []
        self._scope_ids: dict[Scope, int] = {}
        self._profiles: dict[tuple[str, FullDims, frozenset[str] | None], int] = {}
        self._rows: list[list[int]] = []
        self._matrix = np.empty((0, len(dimensions)), dtype=np.int64)

    def profile(self, tenant: str, dims: FullDims, only: frozenset[str] | None) -> int:
        found = self._profiles.get((tenant, dims, only))
        if found is not None:
            return found
        row = []
        for dimension in self.dimensions:
            if dimension == "all":
                scope: Scope | None = (tenant, "all", "all") if only is None else None
            elif only is None or dimension in only:
                scope = (tenant, dimension, dims[_ATTRIBUTE_INDEX[dimension]])
            else:
                scope = None
            row.append(-1 if scope is None else self._scope_id(scope))
        self._rows.append(row)
        found = self._profiles[(tenant, dims, only)] = len(self._rows) - 1
        return found

    def scope_ids(self, profiles: np.ndarray) -> np.ndarray:
        """The scope numbers of each profile in ``profiles``: one row each, one column per dimension."""
        if len(self._matrix) < len(self._rows):
            self._matrix = np.array(self._rows, dtype=np.int64).reshape(len(self._rows), len(self.dimensions))
        return self._matrix[profiles]

    def _scope_id(self, scope: Scope) -> int:
        found = self._scope_ids.get(scope)
        if found is None:
            found = self._scope_ids[scope] = len(self.scopes)
            self.scopes.append(scope)
        return found


class BucketTable:
    """A partition's live buckets as rows of one numpy matrix: a batch adds its sums to all the
    buckets it reaches in one operation, and a bucket costs packed doubles, not float objects."""

    def __init__(self) -> None:
        self.rows: dict[BucketId, int] = {}
        self.stats = np.zeros((64, scoring.STATS_LEN))
        self.versions = np.full((64, 2), -1, dtype=np.int64)
        self._free: list[int] = []
        self.expiry: list[tuple[int, BucketId]] = []  # a heap of (end, bucket)

    def __contains__(self, bucket_id: BucketId) -> bool:
        return bucket_id in self.rows

    def row(self, bucket_id: BucketId) -> int:
        """The bucket's row, created empty if need be."""
        row = self.rows.get(bucket_id)
        if row is None:
            row = self.rows[bucket_id] = self._free.pop() if self._free else self._grow()
            self.stats[row] = 0.0
            self.versions[row] = -1
            heapq.heappush(self.expiry, (bucket_id[2] + bucket_id[1], bucket_id))
        return row

    def put(self, bucket_id: BucketId, bucket: Bucket) -> None:
        row = self.row(bucket_id)
        self.stats[row] = codec.stats_array(bucket.stats)
        self.versions[row] = bucket.versions

    def get(self, bucket_id: BucketId) -> Bucket:
        row = self.rows[bucket_id]
        return Bucket(self.versions[row].tolist(), self.stats[row].astype(STATS_DTYPE).tobytes())

    def expire(self, sealed_ms: int) -> list[BucketId]:
        """Drop the buckets that end at or before ``sealed_ms``: no record can reach them any more."""
        dropped = []
        while self.expiry and self.expiry[0][0] <= sealed_ms:
            _, bucket_id = heapq.heappop(self.expiry)
            row = self.rows.pop(bucket_id, None)
            if row is not None:
                self._free.append(row)
                dropped.append(bucket_id)
        return dropped

    def _grow(self) -> int:
        used = len(self.stats)
        self.stats = np.concatenate([self.stats, np.zeros_like(self.stats)])
        self.versions = np.concatenate([self.versions, np.full_like(self.versions, -1)])
        self._free.extend(range(len(self.stats) - 1, used, -1))
        return used


class Fan:
    """Where a batch's groups land: the buckets of one partition."""

    def __init__(self, index: ScopeIndex, widths_ms: tuple[int, ...], table: BucketTable,
                 sealed_ms: int | None) -> None:
        self.index = index
        self.widths_ms = widths_ms
        self.table = table
        self.sealed_ms = sealed_ms
        self.before: dict[BucketId, tuple[int, int]] = {}  # each touched bucket's versions as the batch began

    def run(self, groups: Groups, batch_max: tuple[int, int]) -> list[BucketId]:
        """Apply the groups; every touched bucket takes the batch's highest offsets as its versions,
        since all of the batch's records that reach it are in it now. Returns the touched buckets."""
        for (key, trigger), stats in groups.replayed.items():
            self._replayed(key, trigger, stats)
        if groups.profiles:
            self._fresh(groups)
        if self.before:
            rows = [self.table.rows[bucket_id] for bucket_id in self.before]
            versions = self.table.versions
            versions[rows] = np.maximum(versions[rows], np.array(batch_max, dtype=np.int64))
        return list(self.before)

    def _row(self, scope: Scope, width: int, start: int) -> int | None:
        """The bucket's row, created if need be; None when no record can reach it any more."""
        if self.sealed_ms is not None and start + width <= self.sealed_ms:
            return None
        bucket_id = (scope, width, start)
        row = self.table.row(bucket_id)
        if bucket_id not in self.before:
            versions = self.table.versions[row]
            self.before[bucket_id] = (int(versions[0]), int(versions[1]))
        return row

    def _replayed(self, key: GroupKey, trigger: int, stats: list[float]) -> None:
        """Applied only where the bucket had not seen the record; touched either way, so that its
        state, which may not have reached the rollup before the crash, is sent again."""
        tenant, dims, only, minute = key
        offset, kind = divmod(trigger, 2)
        ids = self.index.scope_ids(np.array([self.index.profile(tenant, dims, only)]))[0]
        for width in self.widths_ms:
            start = minute - minute % width
            for scope_id in ids[ids >= 0].tolist():
                scope = self.index.scopes[scope_id]
                row = self._row(scope, width, start)
                if row is not None and offset > self.before[(scope, width, start)][kind]:
                    self.table.stats[row] += stats

    def _fresh(self, groups: Groups) -> None:
        """Sum the new records' statistics per (scope, minute), then per bucket, with numpy; then add
        each bucket's sum to it."""
        index = self.index
        minutes = np.array(sorted(set(groups.minutes)), dtype=np.int64)
        minute_of = np.searchsorted(minutes, np.array(groups.minutes, dtype=np.int64))
        scope_ids = index.scope_ids(np.array(groups.profiles, dtype=np.int64))  # effects x dimensions
        owner = np.array(groups.owner, dtype=np.int64)
        cols = np.array(groups.cols, dtype=np.int64)
        vals = np.array(groups.vals, dtype=np.float64)
        reached = scope_ids >= 0
        cells = (scope_ids * len(minutes) + minute_of[:, None])[reached]
        cell_ids, where = np.unique(cells, return_inverse=True)
        # The (scope, minute) cell of each effect in each dimension.
        cell_of = np.full(scope_ids.shape, -1, dtype=np.int64)
        cell_of[reached] = where
        width = scoring.STATS_LEN
        targets, weights = [], []
        for dimension in range(scope_ids.shape[1]):
            cell = cell_of[owner, dimension]
            counted = cell >= 0
            targets.append(cell[counted] * width + cols[counted])
            weights.append(vals[counted])
        per_minute = np.bincount(np.concatenate(targets), weights=np.concatenate(weights),
                                 minlength=len(cell_ids) * width).reshape(len(cell_ids), width)
        cell_scope = cell_ids // len(minutes)
        cell_minute = minutes[cell_ids % len(minutes)]
        for bucket_width in self.widths_ms:
            starts, start_of = np.unique(cell_minute - cell_minute % bucket_width, return_inverse=True)
            pairs, where = np.unique(cell_scope * len(starts) + start_of, return_inverse=True)
            sums = _sum_rows(per_minute, where, len(pairs))
            picked: list[int] = []
            rows: list[int] = []
            for i, pair in enumerate(pairs.tolist()):
                scope_id, start = divmod(pair, len(starts))
                row = self._row(index.scopes[scope_id], bucket_width, int(starts[start]))
                if row is not None:
                    picked.append(i)
                    rows.append(row)
            self.table.stats[rows] += sums[picked]


def _sum_rows(matrix: np.ndarray, targets: np.ndarray, count: int) -> np.ndarray:
    """Row sums per target: one bincount over the flattened matrix."""
    width = matrix.shape[1]
    flat = (targets[:, None] * width + np.arange(width)).ravel()
    return np.bincount(flat, weights=matrix.ravel(), minlength=count * width).reshape(count, width)
