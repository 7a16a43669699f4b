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
from collections.abc import Iterable

import numpy as np

from stream_app import scoring
from stream_app.engine.join import ATTRIBUTES, Effect
from stream_app.engine.records import Bucket, FullDims, Scope

BucketId = tuple[Scope, int, int]  # scope, width, start
GroupKey = tuple[str, FullDims, frozenset[str] | None, int]  # tenant, attributes, moved attributes, minute
_ATTRIBUTE_INDEX = {name: index for index, name in enumerate(ATTRIBUTES)}  # a dimension is named as its attribute


class Groups:
    """The summed effects of one partition's batch."""

    __slots__ = ("fresh", "grid_ms", "replayed")

    def __init__(self, grid_ms: int) -> None:
        self.grid_ms = grid_ms
        self.fresh: dict[GroupKey, list[float]] = {}
        self.replayed: dict[tuple[GroupKey, int], list[float]] = {}  # (group, trigger) -> sums

    def add(self, effects: Iterable[Effect], replayed: int | None) -> None:
        """Add a record's effects; ``replayed`` is its trigger when it may have been applied before."""
        grid = self.grid_ms
        for sign, tenant, dims, event_ms, contribution, only in effects:
            key = (tenant, dims, only, event_ms - event_ms % grid)
            if replayed is None:
                stats = self.fresh.get(key)
                if stats is None:
                    stats = self.fresh[key] = scoring.empty()
            else:
                stats = self.replayed.get((key, replayed))
                if stats is None:
                    stats = self.replayed[(key, replayed)] = scoring.empty()
            if sign == 1:
                for index, value in contribution:
                    stats[index] += value
            else:
                for index, value in contribution:
                    stats[index] -= value


class Fan:
    """Where a batch's groups land: the buckets of one partition, and their expiry."""

    def __init__(self, dimensions: tuple[str, ...], widths_ms: tuple[int, ...], buckets: dict[BucketId, Bucket],
                 expiry: list[tuple[int, BucketId]], sealed_ms: int | None) -> None:
        self.dimensions = dimensions
        self.widths_ms = widths_ms
        self.buckets = buckets
        self.expiry = expiry
        self.sealed_ms = sealed_ms
        self.before: dict[BucketId, tuple[int, int]] = {}  # versions of each touched bucket as the batch began
        self._scopes: dict[tuple[str, FullDims, frozenset[str] | None], list[Scope]] = {}

    def run(self, groups: Groups, batch_max: tuple[int, int]) -> list[BucketId]:
        """Apply the groups; every touched bucket takes the batch's highest offsets as its versions,
        since all of the batch's records that reach it are in it now. Returns the touched buckets."""
        for (key, trigger), stats in groups.replayed.items():
            self._replayed(key, trigger, stats)
        if groups.fresh:
            self._fresh(groups.fresh)
        for bucket_id in self.before:
            versions = self.buckets[bucket_id].versions
            versions[0] = max(versions[0], batch_max[0])
            versions[1] = max(versions[1], batch_max[1])
        return list(self.before)

    def scopes(self, tenant: str, dims: FullDims, only: frozenset[str] | None) -> list[Scope]:
        """The (tenant, dimension, key) scopes an effect counts in; a moved survey skips unchanged ones."""
        found = self._scopes.get((tenant, dims, only))
        if found is not None:
            return found
        scopes = []
        for dimension in self.dimensions:
            if dimension == "all":
                if only is None:
                    scopes.append((tenant, "all", "all"))
            elif only is None or dimension in only:
                scopes.append((tenant, dimension, dims[_ATTRIBUTE_INDEX[dimension]]))
        self._scopes[(tenant, dims, only)] = scopes
        return scopes

    def _bucket(self, scope: Scope, width: int, start: int) -> Bucket | None:
        """The bucket, created if need be; None when no record can reach it any more."""
        if self.sealed_ms is not None and start + width <= self.sealed_ms:
            return None
        bucket_id = (scope, width, start)
        bucket = self.buckets.get(bucket_id)
        if bucket is None:
            bucket = self.buckets[bucket_id] = Bucket([-1, -1], scoring.empty())
            heapq.heappush(self.expiry, (start + width, bucket_id))
        if bucket_id not in self.before:
            self.before[bucket_id] = (bucket.versions[0], bucket.versions[1])
        return bucket

    def _replayed(self, key: GroupKey, trigger: int, stats: list[float]) -> None:
        """Applied only where the bucket had not seen the record; touched either way, so that its
        state, which may not have reached the rollup before the crash, is sent again."""
        tenant, dims, only, minute = key
        offset, kind = divmod(trigger, 2)
        for width in self.widths_ms:
            start = minute - minute % width
            for scope in self.scopes(tenant, dims, only):
                bucket = self._bucket(scope, width, start)
                if bucket is not None and offset > self.before[(scope, width, start)][kind]:
                    bucket.stats = [a + b for a, b in zip(bucket.stats, stats, strict=True)]

    def _fresh(self, fresh: dict[GroupKey, list[float]]) -> None:
        """Sum the groups per (scope, minute) with numpy, then per bucket, then add to the buckets."""
        index: dict[tuple[Scope, int], int] = {}
        rows: list[int] = []
        targets: list[int] = []
        for row, (tenant, dims, only, minute) in enumerate(fresh):
            for scope in self.scopes(tenant, dims, only):
                target = index.setdefault((scope, minute), len(index))
                rows.append(row)
                targets.append(target)
        per_minute = _sum_rows(np.array(list(fresh.values()))[rows], np.array(targets), len(index))
        scope_minutes = list(index)
        for width in self.widths_ms:
            per_bucket: dict[tuple[Scope, int], int] = {}
            bucket_of = [per_bucket.setdefault((scope, minute - minute % width), len(per_bucket))
                         for scope, minute in scope_minutes]
            sums = _sum_rows(per_minute, np.array(bucket_of), len(per_bucket))
            for (scope, start), values in zip(per_bucket, sums.tolist(), strict=True):
                bucket = self._bucket(scope, width, start)
                if bucket is not None:
                    bucket.stats = [a + b for a, b in zip(bucket.stats, values, strict=True)]


def _sum_rows(matrix: np.ndarray, targets: np.ndarray, count: int) -> np.ndarray:
    """Row sums per target: one bincount over the flattened matrix."""
    width = matrix.shape[1]
    flat = (targets[:, None] * width + np.arange(width)).ravel()
    return np.bincount(flat, weights=matrix.ravel(), minlength=count * width).reshape(count, width)
