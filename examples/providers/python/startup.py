# Written by bot-bottle: loaded by `python3 -i` through PYTHONSTARTUP.
# Values are rendered with the `json` filter, which yields valid Python string literals.
import os
import sys

BOTTLE = {{display|json}}
COLOR_SGR = {{color_sgr|json}}
SUPERVISE_URL = {{mcp_url|json}}

if COLOR_SGR and not os.environ.get("NO_COLOR"):
    sys.ps1 = "\001\033[" + COLOR_SGR + "m\002" + BOTTLE + "\001\033[39m\002 >>> "
else:
    sys.ps1 = BOTTLE + " >>> "
print("bot-bottle: " + BOTTLE + " (supervise: " + SUPERVISE_URL + ")")
