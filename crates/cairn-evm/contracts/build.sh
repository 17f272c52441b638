#!/usr/bin/env bash
# Rebuilds bin/*.hex from the Solidity sources with the pinned solc-js (npm). Not needed to build Cairn:
# the bytecode is committed. Needs node and npm.
set -euo pipefail
cd "$(dirname "$0")"
npm install --no-audit --no-fund --silent
node compile.js
