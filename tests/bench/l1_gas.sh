#!/usr/bin/env bash
# Gas used by the Inbox on a fresh anvil, as a markdown table on stdout.
#   tests/bench/l1_gas.sh [BUILD_DIR]      (default: build; needs `make contracts`)
# Each postBatch is a steady-state batch (index >= 1, so the previous hash
# is read and the hash chain extended as in production); postStateRoot is a
# rollup's second post (warm storage for its record, as in production).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$here/build}"
export PATH="$here/.deps/bin:$PATH"
export FOUNDRY_DISABLE_NIGHTLY_WARNING=1
bin="$build/contracts/Inbox.bin"
[ -f "$bin" ] || { echo "l1_gas: $bin missing (make contracts)" >&2; exit 1; }

port=$(/usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
rpc="http://127.0.0.1:$port"
anvil --port "$port" --silent >/dev/null 2>&1 &
anvil_pid=$!
trap 'kill $anvil_pid 2>/dev/null; wait $anvil_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do cast chain-id --rpc-url "$rpc" >/dev/null 2>&1 && break; sleep 0.1; done

pk=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
me=0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266
gas() { /usr/bin/python3 -c 'import json,sys;d=json.load(sys.stdin);assert d["status"]=="0x1",d;print(int(d["gasUsed"],16))'; }
send() { cast send --rpc-url "$rpc" --private-key "$pk" --json "$@"; }

args=$(cast abi-encode 'c(address,uint64)' "$me" 0)
inbox=$(send --create "$(cat "$bin")${args#0x}" | /usr/bin/python3 -c 'import json,sys;print(json.load(sys.stdin)["contractAddress"])')
sig='postBatch(uint64,uint64,uint64,bytes32,uint64[],bytes32[])'
root=0x$(printf 'ab%.0s' $(seq 32))

ns_args() { # n -> "[ids]" "[roots]"
  local n=$1 ids="" roots="" i
  for ((i = 1; i <= n; i++)); do
    ids+="${ids:+,}$((i * 3))"
    roots+="${roots:+,}0x$(printf '%064x' $((i + 1000)))"
  done
  echo "[$ids]" "[$roots]"
}

send "$inbox" "$sig" 0 0 9 "$root" '[1]' "[$root]" >/dev/null # batch 0: first write of everything
index=1 height=10
echo "| call | namespaces | gasUsed | budget |"
echo "|---|---:|---:|---|"
for n in 1 8 32; do
  read -r ids roots < <(ns_args "$n")
  g=$(send "$inbox" "$sig" "$index" "$height" $((height + 9)) "$root" "$ids" "$roots" | gas)
  budget=""
  [ "$n" = 1 ] && budget=$([ "$g" -le 70000 ] && echo "<= 70000 ok" || echo "<= 70000 OVER")
  echo "| postBatch | $n | $g | $budget |"
  index=$((index + 1)) height=$((height + 10))
done
srsig='postStateRoot(uint64,uint64,bytes32,uint8,bytes)'
send "$inbox" "$srsig" 1 1 "$root" 1 0x >/dev/null
loc=0x$(printf 'ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi' | od -An -tx1 | tr -d ' \n')
g=$(send "$inbox" "$srsig" 1 2 "$root" 1 "$loc" | gas)
echo "| postStateRoot | - (63-byte locator) | $g | |"
