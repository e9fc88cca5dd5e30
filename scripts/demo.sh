#!/usr/bin/env bash
# The CyxWiz demo: a local swarm of three daemons on loopback, then the CLI
# talking to each of them through its JSON-RPC API.
set -euo pipefail

bin=${CYXWIZ_BIN:-bin/cyxwiz}
nodes=${DEMO_NODES:-3}
dir=$(mktemp -d "${TMPDIR:-/tmp}/cyxwiz-demo.XXXXXX")
log="$dir/devnet.log"
devnet_pid=""

cleanup() {
  if [ -n "$devnet_pid" ] && kill -0 "$devnet_pid" 2>/dev/null; then
    kill -INT "$devnet_pid"
    wait "$devnet_pid" || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting a devnet of $nodes nodes in $dir"
"$bin" devnet --nodes "$nodes" --dir "$dir/net" >"$log" 2>&1 &
devnet_pid=$!
for _ in $(seq 1 300); do
  grep -q "devnet ready" "$log" 2>/dev/null && break
  kill -0 "$devnet_pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
grep -q "devnet ready" "$log" || { echo "devnet did not start within 30 s"; cat "$log"; exit 1; }
cat "$log"

for i in $(seq 0 $((nodes - 1))); do
  repo="$dir/net/node$i"
  step "node$i: cyxwiz --repo $repo id"
  "$bin" --repo "$repo" id
  step "node$i: cyxwiz --repo $repo swarm peers"
  "$bin" --repo "$repo" swarm peers
done

step "every node sees the other $((nodes - 1)) (checked through the JSON-RPC API)"
for i in $(seq 0 $((nodes - 1))); do
  count=$("$bin" --repo "$dir/net/node$i" swarm peers --json | grep -c '"id"' || true)
  echo "node$i: $count peers"
  [ "$count" -eq $((nodes - 1)) ] || { echo "node$i is missing peers"; exit 1; }
done

# With a ledger, node0 is the arbiter and offers no capacity; node1 submits
# the jobs.
mint=$(sed -n 's/.*priced in mint \([A-Za-z0-9]*\) .*/\1/p' "$log")
providers=$nodes
[ -n "$mint" ] && providers=$((nodes - 1))
req="$dir/net/node1"

step "capacity records in the DHT: cyxwiz --repo $req providers"
for _ in $(seq 1 50); do
  count=$("$bin" --repo "$req" providers --json | grep -c '"id"' || true)
  [ "$count" -ge "$providers" ] && break
  sleep 0.2
done
"$bin" --repo "$req" providers
[ "$count" -ge "$providers" ] || { echo "only $count of $providers providers found"; exit 1; }

# spec FILE MAX prints the spec to submit: FILE itself without a ledger;
# with one, a copy priced at most MAX base units of the devnet's token
# (its local paths made absolute, as they are relative to FILE's folder).
spec() {
  if [ -z "$mint" ]; then echo "$1"; return; fi
  local out="$dir/$(basename "$(dirname "$1")")-$(basename "$1")"
  sed -e "s#\"limits\"#\"price\": {\"max\": \"$2\", \"mint\": \"$mint\"},\n  \"limits\"#" \
    -e "s#\.\./\.\./#$PWD/#g" "$1" >"$out"
  echo "$out"
}
balances() {
  for i in $(seq 1 $((nodes - 1))); do
    role=provider
    [ "$i" = 1 ] && role=requester
    printf '  node%d (%s) %s\n' "$i" "$role" "$("$bin" --repo "$dir/net/node$i" wallet balance)"
  done
}
# tokens REPO prints the node's balance of the devnet's token.
tokens() {
  local b
  b=$("$bin" --repo "$1" wallet balance)
  sed -n 's/.*: \([0-9]*\) of mint .*/\1/p' <<<"$b"
}
# Each check reads a command's whole output before it looks at it: with
# pipefail, a reader that stops early (grep -q, head) would fail the
# writer with SIGPIPE at random.
last_job() {
  local list
  list=$("$bin" --repo "$req" job list --json)
  sed -n '/"id"/{s/.*"id": "\(.*\)".*/\1/p;q}' <<<"$list"
}
# released waits for the job's escrow to be released and prints it.
released() {
  local status
  for _ in $(seq 1 100); do
    status=$("$bin" --repo "$req" job status "$1")
    grep -q "escrow .*: released" <<<"$status" && break
    sleep 0.1
  done
  grep "^escrow" <<<"$status" || true
  grep -q "escrow .*: released" <<<"$status" || { echo "the escrow was not released"; exit 1; }
}

step "a real job: count the words of the docs in WASM on another node"
echo "spec: examples/wordcount/spec.json (the module and inputs are local paths: the CLI adds them first)"
wordcount=$(spec examples/wordcount/spec.json 100000)
if [ -n "$mint" ]; then
  echo "paid: at most 100000 base units of the devnet's token, locked in escrow on the local Solana ledger at award"
  echo "wallets before:"
  balances
fi
"$bin" --repo "$req" job submit "$wordcount" --wait
job=$(last_job)
if [ -n "$mint" ]; then
  released "$job"
  echo "wallets after (the provider got the price; each paid its transaction fees in lamports):"
  balances
fi
"$bin" --repo "$req" job result "$job" -o "$dir/result"
step "the result, fetched by CID: $dir/result/counts.txt"
cat "$dir/result/counts.txt"

step "training: an MNIST classifier on another node, with live metrics"
echo "spec: examples/mnist/spec.json (dataset: the MNIST files in .cache/mnist, added by the CLI)"
"$bin" --repo "$req" job submit "$(spec examples/mnist/spec.json 1000000)" --wait
job=$(last_job)
status=$("$bin" --repo "$req" job status "$job" --json)
acc=$(sed -n '/"eval_accuracy"/{s/.*"eval_accuracy": *\([0-9.e-]*\).*/\1/p;q}' <<<"$status")
echo "test accuracy: $acc"
awk -v a="${acc:-0}" 'BEGIN { exit !(a >= 0.97) }' || { echo "the classifier reached ${acc:-no} accuracy, below 0.97"; exit 1; }
[ -z "$mint" ] || released "$job"
"$bin" --repo "$req" job result "$job" -o "$dir/model"
echo "trained weights (safetensors): $dir/model/model, $(wc -c <"$dir/model/model") bytes"
model=$(sed -n '/"model_cid"/{s/.*"model_cid": *"\([A-Za-z0-9]*\)".*/\1/p;q}' <<<"$status")
[ -n "$model" ] || { echo "the train job's status names no model_cid"; exit 1; }

step "serving: deploy the trained weights ($model) as the service mnist on another node"
deploy=(model deploy "$model" --service mnist --max-hours 0.1)
if [ -n "$mint" ]; then
  deploy+=(--price 100000 --mint "$mint")
  echo "paid: each call costs 10 base units, from a budget node1 locks once with the provider"
  echo "wallets before:"
  balances
  earned_before=$(tokens "$dir/net/node2")
fi
out=$("$bin" --repo "$req" "${deploy[@]}")
echo "$out"
serve=$(sed -n 2p <<<"$out")
for _ in $(seq 1 100); do
  status=$("$bin" --repo "$req" job status "$serve" --json)
  grep -q '"state": "running"' <<<"$status" && break
  sleep 0.2
done
"$bin" --repo "$req" model deployments
grep -q '"state": "running"' <<<"$status" || { echo "the deployment $serve is not running"; exit 1; }

step "cyxwiz infer mnist: the first 8 MNIST test images, with their true labels"
labels=$("${DIGITS_BIN:-bin/mnist-digits}" -data .cache/mnist -n 8 -o "$dir/digits.json")
# The provider loads the weights once the job runs: the first call may
# come before it serves them, so it is tried for a few seconds.
for _ in $(seq 1 20); do
  if answers=$("$bin" --repo "$req" infer mnist "$dir/digits.json" 2>"$dir/infer.err"); then break; fi
  answers=""
  sleep 0.25
done
[ -n "$answers" ] || { echo "cyxwiz infer mnist failed:"; cat "$dir/infer.err"; exit 1; }
mapfile -t truth <<<"$labels"
mapfile -t got <<<"$answers"
[ "${#got[@]}" -eq 8 ] || { echo "infer answered ${#got[@]} of 8 images:"; echo "$answers"; exit 1; }
right=0
for i in "${!got[@]}"; do
  printf '%s  true label %s\n' "${got[$i]}" "${truth[$i]}"
  if [[ "${got[$i]}" == *"class ${truth[$i]} "* ]]; then right=$((right + 1)); fi
done
echo "$right of 8 right"
[ "$right" -ge 7 ] || { echo "the served model got only $right of 8 right"; exit 1; }

step "cyxwiz model undeploy $serve"
"$bin" --repo "$req" model undeploy "$serve"
for _ in $(seq 1 100); do
  status=$("$bin" --repo "$req" job status "$serve" --json)
  grep -q '"state": "running"' <<<"$status" || break
  sleep 0.1
done
"$bin" --repo "$req" job status "$serve"
if [ -n "$mint" ]; then
  # The provider settles the call budget as soon as it stops serving.
  for _ in $(seq 1 100); do
    if [ "$(tokens "$dir/net/node2")" -gt "$earned_before" ]; then break; fi
    sleep 0.1
  done
  echo "wallets after (the provider got 10 for the call, the rest of the budget went back to node1;"
  echo "the deployment's hosting is paid for the time it served, by a split of its escrow, shown on node1's job status above):"
  balances
  [ "$(tokens "$dir/net/node2")" -gt "$earned_before" ] || { echo "the provider was not paid for the call"; exit 1; }
fi

step "stopping the devnet (SIGINT)"
kill -INT "$devnet_pid"
wait "$devnet_pid"
devnet_pid=""
echo "stopped cleanly"
