#!/bin/sh
# Claude Code status line: shows this bottle's identity in its colour, then the model.
# Claude pipes a JSON status document on stdin; only the model's display name is read, with sed
# (the image need not carry jq).
LABEL={{display|sh}}
SGR={{color_sgr|sh}}
input=$(cat)
model=$(printf '%s' "$input" | tr -d '\n' | sed -n 's/.*"display_name"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
[ -n "$model" ] || model=$(printf '%s' "$input" | tr -d '\n' | sed -n 's/.*"id"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
if [ -n "$SGR" ] && [ -z "${NO_COLOR:-}" ]; then
  printf '\033[1;%sm%s\033[0m' "$SGR" "$LABEL"
else
  printf '%s' "$LABEL"
fi
[ -n "$model" ] && printf ' · %s' "$model"
printf '\n'
