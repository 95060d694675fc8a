"""A Merkle tree over chain heads: one root to timestamp for thousands of chains.

A time-stamping authority is asked once per anchor, for one SHA-256 root; each chain
head is a leaf, and its inclusion path (one sibling hash per level) proves it is under
that root. The path has ``ceil(log2(n))`` hashes: 14 for 10,000 chains, so each
subject's ``anchored`` item stays small whatever the tree's size.

Leaves and inner nodes are hashed with different prefixes (``0x00`` / ``0x01``, as in
RFC 6962), so an inner node can never be passed off as a leaf. A level with an odd
count promotes its last node unchanged. A leaf commits to the subject key (itself a
keyed hash of the address) and the head hash: no personal data is in the tree.

This module uses the standard library only: the Lambda builds trees, and anyone
holding an evidence pack can check a path with the same few lines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

#: A sibling on the left of the running hash ("L") or on its right ("R").
LEFT, RIGHT = "L", "R"


def leaf_hash(subject: str, head_hash: str) -> str:
    """The leaf of one chain head: ``SHA-256(0x00 || subject || ":" || head_hash)``."""
    return hashlib.sha256(b"\x00" + f"{subject}:{head_hash}".encode("ascii")).hexdigest()


def node_hash(left: str, right: str) -> str:
    return hashlib.sha256(b"\x01" + bytes.fromhex(left) + bytes.fromhex(right)).hexdigest()


@dataclass(frozen=True)
class Tree:
    """The levels of a tree, leaves first; ``root`` is the one hash of the last level."""

    levels: tuple[tuple[str, ...], ...]

    @property
    def root(self) -> str:
        return self.levels[-1][0]

    def path(self, index: int) -> list[list[str]]:
        """The inclusion path of leaf ``index``: ``[side, sibling hash]`` per level."""
        steps: list[list[str]] = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                steps.append([LEFT if sibling < index else RIGHT, level[sibling]])
            index //= 2
        return steps


def build(leaves: list[str]) -> Tree:
    """Hash ``leaves`` (hex) up to one root; refuses an empty list (nothing to anchor)."""
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    levels = [tuple(leaves)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        above = [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])
        levels.append(tuple(above))
    return Tree(tuple(levels))


def root_from_path(leaf: str, path: list[list[str]]) -> str:
    """The root a leaf and its path lead to: equal to the anchored root, or forged."""
    running = leaf
    for side, sibling in path:
        if side == LEFT:
            running = node_hash(sibling, running)
        elif side == RIGHT:
            running = node_hash(running, sibling)
        else:
            raise ValueError(f"a path step must be {LEFT!r} or {RIGHT!r}, not {side!r}")
    return running
