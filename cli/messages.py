"""``recall check-message``: the message checks a template passes before it is sent."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cli.common import Lang, fail, out


class CheckFormat(str, Enum):
    text = "text"
    json = "json"


def check_message_command(
    text: Annotated[str, typer.Argument(help="The message or template, e.g. '【好物商城】{coupon}元礼金已到账 回TD退订'.")],
    channel: Annotated[str, typer.Option(help="sms | mms | push | email | wechat | phone")] = "sms",
    vertical: Annotated[str | None, typer.Option(help="Business vertical, e.g. finance (needs a risk disclaimer).")] = None,
    attachment: Annotated[Path | None, typer.Option(help="MMS attachment, counted in the 500 KB limit.")] = None,
    format: Annotated[CheckFormat, typer.Option("--format", "-f")] = CheckFormat.text,
    lang: Annotated[Lang, typer.Option(help="Language of the findings.")] = Lang.zh,
) -> None:
    """Check a message before it is sent: SMS length and parts, unsubscribe suffix, banned phrases,
    personal data, placeholders, MMS size. Exit status 1 when any finding is an error."""
    import json

    from experiments.catalog import Channel
    from experiments.message_checks import check_message

    if channel not in {c.value for c in Channel}:
        fail(f"--channel: unknown channel {channel!r}; choose one of {', '.join(c.value for c in Channel)}")
    if attachment is not None and not attachment.is_file():
        fail(f"--attachment: no such file: {attachment}")
    result = check_message(text, channel, vertical=vertical,
                           attachment_bytes=attachment.stat().st_size if attachment else 0)
    if format == CheckFormat.json:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        if result.sms:
            out.print(f"SMS: {result.sms.characters} chars ({result.sms.encoding}), {result.sms.parts} part(s)")
        for f in result.findings:
            colour = {"error": "red", "warning": "yellow", "info": "cyan"}[f.severity.value]
            out.print(f"[{colour}]{f.severity.value:7}[/] {f.code}: {f.message(lang.value)}",
                      highlight=False, soft_wrap=True)
        out.print("OK" if result.ok else "[bold red]blocked: fix the errors above[/]")
    if not result.ok:
        raise typer.Exit(1)



def register(app: typer.Typer) -> None:
    app.command("check-message")(check_message_command)
