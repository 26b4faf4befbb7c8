"""Students whose models are the same network, or nearly, for the course's instructors.

Each student of the course is represented by the submission that counts for them (the best
effective score among their submissions that were built; ties: a passing one, then the later),
fingerprinted by `grader.fingerprint`: identical digests form a group ("identical"); distinct
networks within `near_duplicate_limit` edits of each other are joined into "nearly identical"
groups. Small networks (fewer than `MIN_NEAR_LAYERS` calls) are only grouped when identical:
a five-layer design is what many students write independently.

Fingerprints are cached per submission and grading (`GRADER_FINGERPRINT_CACHE_SECONDS`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache

from assignments.models import Assignment, Submission
from assignments.selectors.standings import _names, course_student_ids
from grader.errors import GraderError
from grader.fingerprint import Fingerprint, edit_distance, fingerprint, near_duplicate_limit

MIN_NEAR_LAYERS = 8
CACHE_SECONDS = 24 * 3600
FINGERPRINT_VERSION = 1  # bump when grader.fingerprint's canonical form changes


@dataclass(frozen=True)
class Member:
    """One student's counted submission and its fingerprint."""

    student_id: int
    username: str
    name: str
    submission_id: int
    score: float | None
    fingerprint: Fingerprint

    @property
    def layers(self) -> int:
        return len(self.fingerprint.layers)


@dataclass(frozen=True)
class Pair:
    """Two members of a group and how many edits apart their networks are."""

    first: Member
    second: Member
    distance: int

    @property
    def similarity(self) -> float:
        longest = max(self.first.layers, self.second.layers) or 1
        return 1.0 - self.distance / longest


@dataclass
class CopyGroup:
    """Students whose networks are identical (`distance` 0) or within a few edits."""

    match: str  # "identical" or "near"
    members: list[Member]
    pairs: list[Pair] = field(default_factory=list)

    @property
    def closest(self) -> Pair | None:
        return min(self.pairs, key=lambda p: p.distance) if self.pairs else None


@dataclass
class CopyReport:
    """The groups of one assignment and what was compared."""

    groups: list[CopyGroup]
    compared: int  # students with a built model
    unreadable: list[int]  # submission ids whose config could not be analysed


def _fingerprint(submission_id: int, generation: Any, config: Any) -> Fingerprint | None:
    key = f"grader:fingerprint:v{FINGERPRINT_VERSION}:{submission_id}:{generation}"
    cached = cache.get(key)
    if cached is not None:
        return Fingerprint.from_dict(cached) if cached else None
    try:
        found: Fingerprint | None = fingerprint(config)
    except GraderError:
        found = None
    cache.set(key, found.to_dict() if found else {}, CACHE_SECONDS)
    return found


def counted_submissions(assignment: Assignment) -> dict[int, int]:
    """`{student id: submission id}`: each course student's counted submission with a model."""
    rows = (
        Submission.objects.filter(
            assignment=assignment,
            student_id__in=course_student_ids(assignment),
            model_config__isnull=False,
        )
        .values_list(
            "pk", "student_id", "created_at", "result__score", "result__score_override",
            "result__passed",
        )
        .order_by()
    )  # fmt: skip
    best: dict[int, tuple] = {}
    for pk, student_id, created, score, override, passed in rows.iterator():
        effective = override if override is not None else score
        key = (effective is not None, effective or 0.0, bool(passed), created, pk)
        if student_id not in best or key > best[student_id][0]:
            best[student_id] = (key, pk)
    return {student_id: pk for student_id, (_, pk) in best.items()}


def members_of(
    assignment: Assignment, submission_ids: dict[int, int]
) -> tuple[list[Member], list[int]]:
    """The fingerprinted members for `{student id: submission id}`, and the unreadable ids."""
    # Instructors see the course display names (never the pseudonyms leaderboards may show).
    names = _names(assignment, list(submission_ids), hidden=False)
    rows = Submission.objects.filter(pk__in=submission_ids.values()).values_list(
        "pk", "student_id", "student__username", "queued_at", "model_config", "result__score",
        "result__score_override",
    )  # fmt: skip
    members, unreadable = [], []
    for pk, student_id, username, queued_at, config, score, override in rows:
        found = _fingerprint(pk, queued_at.timestamp() if queued_at else 0, config)
        if found is None:
            unreadable.append(pk)
            continue
        members.append(
            Member(
                student_id=student_id,
                username=username,
                name=names.get(student_id, username),
                submission_id=pk,
                score=override if override is not None else score,
                fingerprint=found,
            )
        )
    members.sort(key=lambda m: m.username)
    return members, sorted(unreadable)


def _by_id(member: Member) -> int:
    return member.submission_id


def _near_pairs(representatives: list[Member]) -> list[tuple[int, int, int]]:
    """`(i, j, distance)` for representatives within the near-duplicate limit of each other."""
    pairs = []
    for i, first in enumerate(representatives):
        if first.layers < MIN_NEAR_LAYERS:
            continue
        for j in range(i + 1, len(representatives)):
            second = representatives[j]
            if second.layers < MIN_NEAR_LAYERS:
                continue
            limit = near_duplicate_limit(max(first.layers, second.layers))
            distance = edit_distance(
                first.fingerprint.tokens, second.fingerprint.tokens, limit=limit
            )
            if distance is not None and distance > 0:
                pairs.append((i, j, distance))
    return pairs


def copy_groups(assignment: Assignment) -> CopyReport:
    """Groups of the course's students whose counted networks are identical or nearly so.

    Identical groups first (largest first), then near groups (closest first).
    """
    members, unreadable = members_of(assignment, counted_submissions(assignment))
    by_digest: dict[str, list[Member]] = defaultdict(list)
    for member in members:
        by_digest[member.fingerprint.digest].append(member)
    digests = sorted(by_digest)
    groups = [
        CopyGroup(match="identical", members=group)
        for group in (by_digest[d] for d in digests)
        if len(group) > 1
    ]
    groups.sort(key=lambda g: (-len(g.members), g.members[0].username))

    representatives = [by_digest[d][0] for d in digests]
    parent = list(range(len(representatives)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    near = _near_pairs(representatives)
    for i, j, _ in near:
        parent[root(i)] = root(j)
    joined: dict[int, list[int]] = defaultdict(list)
    for i in range(len(representatives)):
        joined[root(i)].append(i)
    near_groups = []
    for indexes in joined.values():
        if len(indexes) < 2:
            continue
        inside = set(indexes)
        group = CopyGroup(
            match="near",
            members=sorted(
                (m for i in indexes for m in by_digest[digests[i]]), key=lambda m: m.username
            ),
            pairs=[
                Pair(*sorted((representatives[i], representatives[j]), key=_by_id), distance)
                for i, j, distance in near
                if i in inside
            ],
        )
        near_groups.append(group)
    near_groups.sort(key=lambda g: (g.closest.distance if g.closest else 0, g.members[0].username))
    return CopyReport(groups=groups + near_groups, compared=len(members), unreadable=unreadable)
