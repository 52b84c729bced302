"""Rewrite docs/settings.rst's option reference from django_scgi/conf.py (after editing OPTIONS)."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django_scgi.conf import options_rst

PAGE = Path(__file__).resolve().parent.parent / "docs" / "settings.rst"
text = PAGE.read_text()
new = re.sub(r"\.\. options-start\n.*?\.\. options-end",
             lambda _: ".. options-start\n\n" + options_rst() + "\n.. options-end", text,
             flags=re.DOTALL)
PAGE.write_text(new)
print("docs/settings.rst options reference", "updated" if new != text else "already current")
