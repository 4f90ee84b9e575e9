#!/bin/sh
# Claude Code status line: this bottle's identity in its colour, then the model.
# Claude pipes a JSON status document on stdin (model.display_name, model.id, ...); only the
# model's name is read, with sed, so the image needs no jq. The identity is fixed when the
# bottle is planned and sits in single quotes: it is printed literally, never evaluated.
# The colour uses the same SGR as `bot-bottle list` (foreground only, reset with 39) and is
# dropped when NO_COLOR is set (https://no-color.org).
LABEL={{display|sh}}
SGR={{color_sgr|sh}}
input=$(cat)
flat=$(printf '%s' "$input" | tr -d '\n')
model=$(printf '%s' "$flat" | sed -n 's/.*"display_name"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
[ -n "$model" ] || model=$(printf '%s' "$flat" | sed -n 's/.*"model"[[:space:]]*:[[:space:]]*{[^}]*"id"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
if [ -n "$SGR" ] && [ -z "${NO_COLOR:-}" ]; then
  printf '\033[%sm%s\033[39m' "$SGR" "$LABEL"
else
  printf '%s' "$LABEL"
fi
if [ -n "$model" ]; then
  printf ' · %s' "$model"
fi
printf '\n'
