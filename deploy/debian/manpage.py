#!/usr/bin/env python3
"""drift-notifier(1) from the binary's own --help (clap), for the Debian package.

    manpage.py BINARY VERSION DATE > drift-notifier.1

The options and their descriptions come from the binary, so the page cannot drift from it; the
sections clap does not print (environment, files, exit status) are written here. The binary
runs with an empty environment: clap prints `[env: NAME=value]` for variables that are set.
"""
import re
import subprocess
import sys

binary, version, date = sys.argv[1:4]

COMMANDS = [["run"], ["contract", "push"], ["contract", "check"], ["check"]]


def help_text(args):
    out = subprocess.run([binary, *args, "--help"], env={}, check=True,
                         capture_output=True, text=True).stdout
    return re.sub(r"\[env: ([A-Z0-9_]+)=\]", r"[env: \1]", out)


def esc(text):
    """Escapes text for roff: backslashes, hyphens, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def parse(text):
    """(description, usage, [(section, [(item, description)])]) from clap's help."""
    lines = text.rstrip("\n").split("\n")
    desc = []
    while lines and lines[0].strip():
        desc.append(lines.pop(0).strip())
    usage, sections, current = "", [], None
    for line in lines:
        if not line.strip():
            continue
        if line.startswith("Usage: "):
            usage = line[len("Usage: "):]
            continue
        m = re.match(r"^(\w[\w ]*):$", line)
        if m:
            current = (m.group(1), [])
            sections.append(current)
            continue
        indent = len(line) - len(line.lstrip())
        if current is None:
            continue
        if indent >= 10 and current[1]:
            item, d = current[1][-1]
            current[1][-1] = (item, (d + " " + line.strip()).strip())
            continue
        m = re.match(r"^\s+(\S.*?)(?:\s{2,}(\S.*))?$", line)
        current[1].append((m.group(1), m.group(2) or ""))
    return " ".join(desc), usage, sections


def item_roff(item):
    """`-h, --help` in bold, `<VALUE>` in italics."""
    parts = re.split(r"(<[^>]+>|\[[A-Z_]+\])", item)
    out = ""
    for p in parts:
        if not p:
            continue
        if p.startswith("<") or (p.startswith("[") and p.endswith("]")):
            out += "\\fI" + esc(p) + "\\fR"
        else:
            out += "\\fB" + esc(p) + "\\fR"
    return out


about, _, _ = parse(help_text([]))
page = [
    '.TH DRIFT\\-NOTIFIER 1 "%s" "drift\\-notifier %s" "User Commands"' % (date, esc(version)),
    ".nh",
    ".SH NAME",
    "drift\\-notifier \\- file drift_watch's dbt source drift as Asana tasks",
    ".SH SYNOPSIS",
]
parsed = [(cmd, parse(help_text(cmd))) for cmd in COMMANDS]
for i, (cmd, (_, usage, _)) in enumerate(parsed):
    if i:
        page.append(".br")
    name, _, rest = usage.partition(" ".join(cmd))
    page.append(".B %s" % esc((name + " ".join(cmd)).strip()))
    if rest.strip():
        page.append(esc(rest.strip()))
page += [
    ".SH DESCRIPTION",
    esc(about) + ".",
    ".PP",
    "It runs beside the audit database where the drift_watch PostgreSQL extension records the",
    "differences between a dbt project's source contract and the live schema of the application",
    "database. \\fBrun\\fR is the sidecar, normally started by systemd",
    "(\\fIdrift\\-notifier.service\\fR); the other commands load the contract, gate a pull request",
    "on drift, and run a check on demand.",
    ".PP",
    "Every setting is a flag or the environment variable named with it; the service reads them",
    "from \\fI/etc/drift\\-watch/notifier.env\\fR.",
    ".SH COMMANDS",
]
for cmd, (desc, usage, sections) in parsed:
    page += ['.SS "%s"' % esc("drift-notifier " + " ".join(cmd)), esc(desc)]
    for title, items in sections:
        if title == "Commands":
            continue
        for item, d in items:
            if item == "-h, --help":
                continue
            page += [".TP", item_roff(item), esc(d) if d else ""]
page += [
    ".SH ENVIRONMENT",
    ".TP",
    ".B ASANA_TOKEN",
    "The Asana personal access token or service-account token. Read from the environment only",
    "(a flag would show it in the process list) and never logged. Unset: \\fBrun\\fR prints the",
    "tasks it would file instead (dry run).",
    ".TP",
    ".B DRIFT_LOG",
    "The log filter (tracing's env-filter syntax); \\fBinfo\\fR by default.",
    ".SH FILES",
    ".TP",
    ".I /etc/drift\\-watch/notifier.env",
    "The service's configuration: DATABASE_URL, ASANA_TOKEN, ASANA_PROJECT and the optional",
    "settings, one KEY=value a line. It holds secrets: root-owned, mode 0600 (systemd reads it",
    "before dropping privileges).",
    ".TP",
    ".I /usr/lib/systemd/system/drift\\-notifier.service",
    "The hardened unit (DynamicUser, read-only system). It is not enabled on installation:",
    "configure, then \\fBsystemctl enable \\-\\-now drift\\-notifier\\fR.",
    ".SH EXIT STATUS",
    "0 on success (\\fBrun\\fR: stopped by SIGTERM or SIGINT); 1 on failure (\\fBrun \\-\\-once\\fR:",
    "something left undelivered; \\fBcontract check\\fR: drift); 2 on a configuration error,",
    "which the unit does not restart.",
    ".SH SEE ALSO",
    ".BR systemctl (1),",
    ".BR journalctl (1),",
    ".BR systemd.exec (5)",
]
print("\n".join(line for line in page if line != ""))
