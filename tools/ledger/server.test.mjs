// Tests of the local ledger: run with `node --test` in this folder.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { b58decode, b58encode, parseJSON, toJSON } from './server.mjs';

const SYSTEM = b58encode(Buffer.alloc(32));
const RECENT_BLOCKHASHES = 'SysvarRecentB1ockHashes11111111111111111111';
const RENT = 'SysvarRent111111111111111111111111111111111';
const CLOCK = 'SysvarC1ock11111111111111111111111111111111';
const SOL = 1_000_000_000;

// ---------------------------------------------------------------- helpers

async function startLedger() {
  const proc = spawn(process.execPath, ['server.mjs', '--port', '0', '--slot-ms', '0'], {
    cwd: new URL('.', import.meta.url), stdio: ['pipe', 'pipe', 'inherit'],
  });
  const [line] = await once(createInterface({ input: proc.stdout }), 'line');
  return { ...JSON.parse(line), proc };
}

function keypair() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url');
  return { pub, address: b58encode(pub), sign: (msg) => crypto.sign(null, msg, privateKey) };
}

const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const u64 = (n) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; };
const shortvec = (n) => Buffer.from(n < 0x80 ? [n] : [(n & 0x7f) | 0x80, n >> 7]);
const meta = (address, signer, writable) => ({ address, signer, writable });

const ix = {
  transfer: (from, to, lamports) => ({
    program: SYSTEM, accounts: [meta(from, true, true), meta(to, false, true)], data: Buffer.concat([u32(2), u64(lamports)]),
  }),
  createAccount: (from, account, lamports, space, owner) => ({
    program: SYSTEM, accounts: [meta(from, true, true), meta(account, true, true)],
    data: Buffer.concat([u32(0), u64(lamports), u64(space), b58decode(owner)]),
  }),
  initializeNonce: (nonce, authority) => ({
    program: SYSTEM, accounts: [meta(nonce, false, true), meta(RECENT_BLOCKHASHES, false, false), meta(RENT, false, false)],
    data: Buffer.concat([u32(6), b58decode(authority)]),
  }),
  advanceNonce: (nonce, authority) => ({
    program: SYSTEM, accounts: [meta(nonce, false, true), meta(RECENT_BLOCKHASHES, false, false), meta(authority, true, false)],
    data: u32(4),
  }),
};

// buildTx compiles a legacy transaction; signers[0] pays the fee.
function buildTx(signers, blockhash, instructions) {
  const accounts = new Map([[signers[0].address, meta(signers[0].address, true, true)]]);
  const add = (m) => {
    const a = accounts.get(m.address) ?? meta(m.address, false, false);
    accounts.set(m.address, meta(m.address, a.signer || m.signer, a.writable || m.writable));
  };
  for (const i of instructions) {
    i.accounts.forEach(add);
    add(meta(i.program, false, false));
  }
  const rank = (a) => (a.signer ? 0 : 2) + (a.writable ? 0 : 1);
  const keys = [...accounts.values()].sort((a, b) => rank(a) - rank(b));
  const index = (addr) => keys.findIndex((k) => k.address === addr);
  const nSigners = keys.filter((k) => k.signer).length;
  const message = Buffer.concat([
    Buffer.from([nSigners, keys.filter((k) => k.signer && !k.writable).length, keys.filter((k) => !k.signer && !k.writable).length]),
    shortvec(keys.length), ...keys.map((k) => b58decode(k.address)),
    b58decode(blockhash),
    shortvec(instructions.length),
    ...instructions.flatMap((i) => [
      Buffer.from([index(i.program)]), shortvec(i.accounts.length), Buffer.from(i.accounts.map((a) => index(a.address))),
      shortvec(i.data.length), i.data,
    ]),
  ]);
  const sigs = keys.slice(0, nSigners).map((k) => signers.find((s) => s.address === k.address).sign(message));
  const bytes = Buffer.concat([shortvec(nSigners), ...sigs, message]);
  return { base64: bytes.toString('base64'), bytes, signature: b58encode(sigs[0]) };
}

// ---------------------------------------------------------------- tests

describe('ledger', () => {
  let ledger;
  let nextId = 1;
  const post = async (body) => {
    const res = await fetch(ledger.rpc, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
    return { status: res.status, text: await res.text() };
  };
  const call = async (method, ...params) => JSON.parse((await post(JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params }))).text);
  const ok = async (method, ...params) => {
    const r = await call(method, ...params);
    assert.equal(r.error, undefined, `${method}: ${JSON.stringify(r.error)}`);
    return r.result;
  };
  const send = (tx, opts = {}) => call('sendTransaction', tx.base64, { encoding: 'base64', ...opts });
  const balance = async (address) => (await ok('getBalance', address)).value;
  const blockhash = async () => (await ok('getLatestBlockhash')).value.blockhash;
  const funded = async (lamports = 10 * SOL) => {
    const k = keypair();
    await ok('requestAirdrop', k.address, lamports);
    return k;
  };

  before(async () => { ledger = await startLedger(); });
  after(() => { ledger.proc.stdin.end(); });

  test('codecs', () => {
    for (const hex of ['', '00', '0000ff', 'ffffffff', '00010203']) {
      assert.equal(b58decode(b58encode(Buffer.from(hex, 'hex'))).toString('hex'), hex);
    }
    assert.equal(b58encode(Buffer.alloc(32)), '11111111111111111111111111111111');
    const v = parseJSON('{"id":18446744073709551617,"a":[1,2.5,"x\\u0041",true,null],"b":-0}');
    assert.equal(v.a[3], true);
    assert.equal(toJSON(v), '{"id":18446744073709551617,"a":[1,2.5,"xA",true,null],"b":0}');
    for (const bad of ['{', '{"a":}', '[1,]', '01', '"\u0001"', '{"a":1}x', '[[[['.repeat(100)]) {
      assert.throws(() => parseJSON(bad), SyntaxError, bad);
    }
  });

  test('version, rent, airdrop, transfer and fee per signature', async () => {
    assert.match((await ok('getVersion'))['solana-core'], /litesvm/);
    assert.equal(await ok('getHealth'), 'ok');
    assert.equal(await ok('getMinimumBalanceForRentExemption', 165), 2039280);
    const a = await funded();
    const b = keypair();
    assert.equal(await balance(a.address), 10 * SOL);
    assert.equal((await ok('getAccountInfo', b.address)).value, null);
    const tx = buildTx([a], await blockhash(), [ix.transfer(a.address, b.address, 1_000_000)]);
    const fee = await ok('getFeeForMessage', tx.bytes.subarray(65).toString('base64'));
    assert.equal(fee.value, 5000);
    assert.equal((await send(tx)).result, tx.signature);
    assert.equal(await balance(a.address), 10 * SOL - 1_000_000 - 5000);
    assert.equal(await balance(b.address), 1_000_000);
    const [st] = (await ok('getSignatureStatuses', [tx.signature])).value;
    assert.equal(st.confirmationStatus, 'finalized');
    assert.equal(st.err, null);
    const got = await ok('getTransaction', tx.signature, { encoding: 'base64' });
    assert.equal(got.meta.fee, 5000);
    assert.equal(got.transaction[0], tx.base64);
    const info = (await ok('getAccountInfo', b.address, { encoding: 'base64' })).value;
    assert.deepEqual([info.lamports, info.owner, info.data], [1_000_000, SYSTEM, ['', 'base64']]);
  });

  test('blockhash window of 150 slots', async () => {
    const a = await funded();
    const { value } = await ok('getLatestBlockhash');
    const start = await ok('getSlot');
    assert.equal(value.lastValidBlockHeight, start + 150);
    await ok('cyxwiz_advanceSlots', 150);
    assert.equal((await ok('isBlockhashValid', value.blockhash)).value, true);
    const tx = buildTx([a], value.blockhash, [ix.transfer(a.address, keypair().address, 1_000_000)]);
    assert.equal((await send(tx)).result, tx.signature); // lands in the blockhash's last valid slot
    assert.equal((await ok('isBlockhashValid', value.blockhash)).value, false);
    const late = buildTx([a], value.blockhash, [ix.transfer(a.address, keypair().address, 1_000_000)]);
    const r = await send(late);
    assert.equal(r.error.code, -32002);
    assert.equal(r.error.data.err, 'BlockhashNotFound');
    assert.equal((await ok('getFeeForMessage', late.bytes.subarray(65).toString('base64'))).value, null);
    // Without preflight a validator accepts the bytes and drops them.
    assert.equal((await send(late, { skipPreflight: true })).result, late.signature);
    assert.deepEqual((await ok('getSignatureStatuses', [late.signature])).value, [null]);
  });

  test('a replayed transaction is refused', async () => {
    const a = await funded();
    const tx = buildTx([a], await blockhash(), [ix.transfer(a.address, keypair().address, 1_000_000)]);
    assert.equal((await send(tx)).result, tx.signature);
    const after = await balance(a.address);
    const r = await send(tx);
    assert.equal(r.error.code, -32002);
    assert.equal(r.error.data.err, 'AlreadyProcessed');
    assert.match(r.error.message, /already been processed/);
    assert.equal((await send(tx, { skipPreflight: true })).result, tx.signature);
    assert.equal(await balance(a.address), after);
  });

  test('durable-nonce transactions outlive the window and land once', async () => {
    const a = await funded();
    const nonce = keypair();
    const rent = await ok('getMinimumBalanceForRentExemption', 80);
    const setup = buildTx([a, nonce], await blockhash(), [
      ix.createAccount(a.address, nonce.address, rent, 80, SYSTEM), ix.initializeNonce(nonce.address, a.address),
    ]);
    assert.equal((await send(setup)).result, setup.signature);
    const stored = async () => b58encode(Buffer.from((await ok('getAccountInfo', nonce.address)).value.data[0], 'base64').subarray(40, 72));
    const value = await stored();
    await ok('cyxwiz_advanceSlots', 200);
    const to = keypair();
    const tx = buildTx([a], value, [ix.advanceNonce(nonce.address, a.address), ix.transfer(a.address, to.address, 2_000_000)]);
    assert.equal((await send(tx)).result, tx.signature);
    assert.equal(await balance(to.address), 2_000_000);
    assert.notEqual(await stored(), value);
    const again = await send(tx);
    assert.equal(again.error.data.err, 'BlockhashNotFound'); // the nonce moved on
    // The nonce value as blockhash without AdvanceNonceAccount first is no blockhash.
    const fresh = await stored();
    const plain = buildTx([a], fresh, [ix.transfer(a.address, to.address, 1)]);
    assert.equal((await send(plain)).error.data.err, 'BlockhashNotFound');
    // Nor with another authority.
    const other = await funded();
    const stolen = buildTx([other], fresh, [ix.advanceNonce(nonce.address, other.address)]);
    assert.equal((await send(stolen)).error.data.err, 'BlockhashNotFound');
    // A durable-nonce transaction that fails still advances the nonce.
    const failing = buildTx([a], fresh, [ix.advanceNonce(nonce.address, a.address), ix.transfer(a.address, to.address, 100 * SOL)]);
    assert.equal((await send(failing, { skipPreflight: true })).result, failing.signature);
    assert.deepEqual((await ok('getSignatureStatuses', [failing.signature])).value[0].err, { InstructionError: [1, { Custom: 1 }] });
    assert.notEqual(await stored(), fresh);
  });

  test('failed transactions: preflight refuses them, without preflight they land with the error', async () => {
    const a = await funded(SOL);
    const tx = buildTx([a], await blockhash(), [ix.transfer(a.address, keypair().address, 5 * SOL)]);
    const r = await send(tx);
    assert.equal(r.error.code, -32002);
    assert.deepEqual(r.error.data.err, { InstructionError: [0, { Custom: 1 }] });
    assert.match(r.error.message, /custom program error: 0x1/);
    assert.ok(r.error.data.logs.length > 0);
    assert.equal((await send(tx, { skipPreflight: true })).result, tx.signature);
    assert.equal(await balance(a.address), SOL - 5000); // the fee is charged all the same
    const [st] = (await ok('getSignatureStatuses', [tx.signature])).value;
    assert.deepEqual(st.err, { InstructionError: [0, { Custom: 1 }] });
    const sim = await ok('simulateTransaction', buildTx([a], await blockhash(), [ix.transfer(a.address, a.address, 1)]).base64, { encoding: 'base64' });
    assert.equal(sim.value.err, null);
  });

  test('warp moves the Clock sysvar', async () => {
    const now = async () => Number(Buffer.from((await ok('getAccountInfo', CLOCK)).value.data[0], 'base64').readBigInt64LE(32));
    const before = await now();
    assert.ok(Math.abs(before - Date.now() / 1000) < 5, `clock ${before} is not wall time`);
    await ok('cyxwiz_warpTime', 3600);
    assert.ok(await now() >= before + 3600);
    assert.equal((await call('cyxwiz_warpTime', -1)).error.code, -32602);
  });

  test('websocket: signature and account notifications, huge ids echoed', async () => {
    const a = await funded();
    const b = keypair();
    const ws = new WebSocket(ledger.ws);
    const messages = [];
    const waiters = [];
    ws.on('message', (d) => {
      messages.push(d.toString());
      waiters.splice(0).forEach((w) => w());
    });
    const next = async (pred) => {
      for (;;) {
        const i = messages.findIndex(pred);
        if (i >= 0) return messages.splice(i, 1)[0];
        await new Promise((r) => waiters.push(r));
      }
    };
    await once(ws, 'open');
    const tx = buildTx([a], await blockhash(), [ix.transfer(a.address, b.address, 3_000_000)]);
    ws.send(`{"jsonrpc":"2.0","id":18446744073709551615,"method":"signatureSubscribe","params":["${tx.signature}",{"commitment":"finalized"}]}`);
    ws.send(`{"jsonrpc":"2.0","id":9007199254740993,"method":"accountSubscribe","params":["${b.address}",{"encoding":"base64"}]}`);
    const sigReply = await next((m) => m.includes('"id":18446744073709551615'));
    const accReply = await next((m) => m.includes('"id":9007199254740993'));
    const sigSub = JSON.parse(sigReply).result;
    const accSub = JSON.parse(accReply).result;
    assert.ok(sigSub > 0 && accSub > 0 && sigSub !== accSub);
    assert.equal((await send(tx)).result, tx.signature);
    const note = JSON.parse(await next((m) => m.includes('signatureNotification')));
    assert.equal(note.params.subscription, sigSub);
    assert.equal(note.params.result.value.err, null);
    assert.equal('id' in note, false);
    const acc = JSON.parse(await next((m) => m.includes('accountNotification')));
    assert.equal(acc.params.subscription, accSub);
    assert.equal(acc.params.result.value.lamports, 3_000_000);
    // A subscription to a signature that already landed notifies at once.
    ws.send(`{"jsonrpc":"2.0","id":"s","method":"signatureSubscribe","params":["${tx.signature}"]}`);
    await next((m) => m.includes('"id":"s"'));
    await next((m) => m.includes('signatureNotification'));
    ws.send(`{"jsonrpc":"2.0","id":7,"method":"accountUnsubscribe","params":[${accSub}]}`);
    assert.equal(JSON.parse(await next((m) => m.includes('"id":7'))).result, true);
    ws.send(`{"jsonrpc":"2.0","id":8,"method":"accountUnsubscribe","params":[${accSub}]}`);
    assert.equal(JSON.parse(await next((m) => m.includes('"id":8'))).error.code, -32602);
    ws.send('{"jsonrpc":"2.0","id":9,"method":"slotSubscribe"}');
    await next((m) => m.includes('"id":9'));
    await ok('cyxwiz_advanceSlots', 1);
    assert.ok(JSON.parse(await next((m) => m.includes('slotNotification'))).params.result.slot > 0);
    ws.send('not json');
    assert.equal(JSON.parse(await next((m) => m.includes('-32700'))).id, null);
    ws.close();
  });

  test('ids are echoed verbatim over HTTP', async () => {
    for (const id of ['123456789012345678901234567890', '18446744073709551615', '-5', '1.5e3', '"a-uuid"', 'null']) {
      const { text } = await post(`{"jsonrpc":"2.0","id":${id},"method":"getHealth"}`);
      assert.ok(text.endsWith(`"id":${id}}`), text);
    }
    const { text } = await post('[{"jsonrpc":"2.0","id":1,"method":"getSlot"},{"jsonrpc":"2.0","id":99999999999999999999,"method":"nope"}]');
    assert.match(text, /^\[\{"jsonrpc":"2.0","result":\d+,"id":1\},\{"jsonrpc":"2.0","error":\{"code":-32601.*"id":99999999999999999999\}\]$/);
  });

  test('bad input is answered, never fatal', async () => {
    const code = async (body) => JSON.parse((await post(body)).text).error.code;
    assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":'), -32700);
    assert.equal(await code('\u0000\u00ff'), -32700);
    assert.equal(await code('[]'), -32600);
    assert.equal(await code('{"jsonrpc":"2.0","id":{},"method":"getHealth"}'), -32600);
    assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"nope"}'), -32601);
    assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"toString"}'), -32601);
    assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"getBalance","params":["not a key"]}'), -32602);
    assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"getBalance","params":{"a":1}}'), -32602);
    assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"sendTransaction","params":["AAAA",{"encoding":"base64"}]}'), -32602);
    assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"sendTransaction","params":["%%%"]}'), -32602);
    assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"getAccountInfo","params":["11111111111111111111111111111111",{"encoding":"jsonParsed"}]}'), -32602);
    const a = await funded();
    const tx = buildTx([a], await blockhash(), [ix.transfer(a.address, keypair().address, 1)]);
    tx.bytes[70] ^= 1; // inside the message: the signature no longer matches
    const r = await send({ base64: tx.bytes.toString('base64') });
    assert.equal(r.error.code, -32003);
    const huge = await post(`{"jsonrpc":"2.0","id":1,"method":"getHealth","params":["${'x'.repeat(2 << 20)}"]}`);
    assert.equal(huge.status, 413);
    assert.equal((await fetch(ledger.rpc)).status, 405);
    assert.equal(await ok('getHealth'), 'ok');
    assert.equal(ledger.proc.exitCode, null);
  });
});

test('the server exits when stdin closes', async () => {
  const { proc } = await startLedger();
  proc.stdin.end();
  const [code] = await once(proc, 'exit');
  assert.equal(code, 0);
});
