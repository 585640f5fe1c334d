"""NATS subject rules for `target_command` and `dead_letter_subject`.

A target is a concrete publish subject: dot-separated tokens of visible ASCII without wildcards
(`*`, `>`), whitespace or empty tokens. The scheduler's own namespaces are never targets. A schedule's
dead letters go to the service's dead-letter subject, a subject below it, or a subject the command
whitelist allows: never to another of the scheduler's own subjects.
"""

from __future__ import annotations

import re

MAX_SUBJECT_LENGTH = 255
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]+$")
RESERVED_PREFIXES = ("cmd.scheduler.", "evt.", "$")


def subject_problem(subject: str) -> str | None:
    """Why `subject` cannot be a publish target, or None when it can."""
    if not subject:
        return "must not be empty"
    if len(subject) > MAX_SUBJECT_LENGTH:
        return f"must be at most {MAX_SUBJECT_LENGTH} characters"
    if subject.startswith(RESERVED_PREFIXES) or subject == "cmd.scheduler":
        return "the scheduler's own subjects (cmd.scheduler.*, evt.*, $*) cannot be targets"
    return _syntax_problem(subject)


def dead_letter_problem(subject: str, default: str, whitelist: list[str]) -> str | None:
    """Why `subject` cannot receive a schedule's dead letters (`default`: DEAD_LETTER_SUBJECT), or None."""
    if subject == default or subject.startswith(default + "."):
        return _syntax_problem(subject)
    problem = subject_problem(subject)
    if problem is not None:
        return problem
    if not allowed_by(whitelist, subject):
        return f"must be {default}, a subject below it, or a subject COMMAND_WHITELIST allows"
    return None


def default_dead_letter_problem(subject: str) -> str | None:
    """Why `subject` cannot be DEAD_LETTER_SUBJECT, or None: an event subject (`evt.…`) may be, never
    one of the scheduler's command subjects or a `$` system subject."""
    reserved = tuple(p for p in RESERVED_PREFIXES if p != "evt.")
    if subject.startswith(reserved) or subject == "cmd.scheduler":
        return "must not be one of the scheduler's command subjects (cmd.scheduler.*) or $*"
    return _syntax_problem(subject)


def _syntax_problem(subject: str) -> str | None:
    if len(subject) > MAX_SUBJECT_LENGTH:
        return f"must be at most {MAX_SUBJECT_LENGTH} characters"
    for token in subject.split("."):
        if token in ("*", ">"):
            return "must be a concrete subject without wildcards (* or >)"
        if not token:
            return "must be dot-separated tokens without empty parts (e.g. cmd.service.action)"
        if not _TOKEN.match(token):
            return "tokens may contain only letters, digits, '-' and '_'"
    return None


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is not a NATS subject pattern (`*` matches one token, `>` the rest), or None."""
    if not pattern:
        return "is empty"
    tokens = pattern.split(".")
    for index, token in enumerate(tokens):
        if token == ">" and index != len(tokens) - 1:
            return "may use '>' only as the last token"
        if token not in ("*", ">") and not _TOKEN.match(token):
            return "must be dot-separated tokens of letters, digits, '-', '_', or the wildcards * and >"
    return None


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: `cmd.*.send` matches `cmd.mail.send`; `cmd.>` matches `cmd.a.b`."""
    pattern_tokens, subject_tokens = pattern.split("."), subject.split(".")
    for index, token in enumerate(pattern_tokens):
        if token == ">":
            return len(subject_tokens) > index
        if index >= len(subject_tokens) or (token != "*" and token != subject_tokens[index]):
            return False
    return len(pattern_tokens) == len(subject_tokens)


def allowed_by(patterns: list[str], subject: str) -> bool:
    return any(subject_matches(p, subject) for p in patterns)
