#!/usr/bin/env node
// A local Solana ledger for tests and `cyxwiz devnet`: the Solana JSON-RPC
// (HTTP POST) and PubSub (WebSocket, same port) subset that the escrow client
// uses, served on 127.0.0.1 on top of LiteSVM, which runs the real SVM with the
// real System, SPL Token, Token-2022, Associated Token Account, Memo and Stake
// programs in process.
//
//   node server.mjs [--port N] [--slot-ms MS] [--ignore-stdin]
//
// --port 0 (the default) picks a free port. On start it prints one line of JSON
// to stdout, {"rpc":"http://127.0.0.1:PORT","ws":"ws://127.0.0.1:PORT"}, and
// then logs to stderr only. It exits on SIGTERM, SIGINT and when stdin closes
// (unless --ignore-stdin), so a parent that dies takes it down. Exit status 3:
// LiteSVM cannot load (not installed, or no native build for this platform).
//
// Ledger rules enforced here (LiteSVM alone accepts only its latest blockhash):
// a new blockhash per slot; slots advance every --slot-ms (400 by default, 0 =
// only on demand) and after every landed transaction, so each one lands in its
// own slot; a blockhash is valid for 150 slots; a durable-nonce transaction
// (first instruction AdvanceNonceAccount, recent blockhash = the nonce's stored
// value, nonce authority signing) is valid while its nonce is unchanged; a
// landed signature is refused again (AlreadyProcessed). The Clock sysvar is
// wall time plus an offset. Fees: 5000 lamports per signature.
//
// Test controls, JSON-RPC methods: cyxwiz_warpTime [seconds] adds to the clock,
// cyxwiz_advanceSlots [n] ends n slots, cyxwiz_setAccount [address, {lamports,
// data: base64, owner, executable}] writes an account as is.
//
// Differences from a validator: every commitment is reached at once (statuses
// say "finalized"); signatureSubscribe on a signature that already landed
// notifies at once; priority fees are not counted by getFeeForMessage; address
// lookup tables are not resolved for the nonce check; encodings jsonParsed and
// base64+zstd are not served; there are no blocks, votes, leaders or epochs.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { WebSocketServer } from 'ws';

// LiteSVM is a native module, published for some platforms only. Exit status 3
// says it cannot load here.
const require = createRequire(import.meta.url);
let svmlib, LITESVM_VERSION;
try {
  svmlib = require('litesvm/dist/internal.js');
  LITESVM_VERSION = require('litesvm/package.json').version;
} catch (e) {
  process.stderr.write(`ledger: LiteSVM does not load on ${process.platform}-${process.arch} ` +
    `(install it with npm ci --prefix tools/ledger): ${e.message.split('\n')[0]}\n`);
  process.exit(3);
}

const MAX_BODY = 1 << 20; // bytes of one HTTP request or WebSocket message
const MAX_AGE = 150; // slots a blockhash stays valid (MAX_PROCESSING_AGE)
const FEE_PER_SIGNATURE = 5000n;
const PACKET_DATA_SIZE = 1232; // largest serialized transaction
const RENT_EXEMPT_EPOCH = 18446744073709551615n;
const MAX_STATUSES = 100000; // landed signatures remembered (each ends a slot)
const MAX_SIGNATURES_PER_ADDRESS = 1000; // getSignaturesForAddress's limit, as on a validator

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const opts = { port: 0, slotMs: 400, watchStdin: true };
  const usage = (msg) => {
    process.stderr.write(`ledger: ${msg}\nusage: node server.mjs [--port N] [--slot-ms MS] [--ignore-stdin]\n`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = (max) => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 0 || v > max) usage(`${a} needs an integer in [0, ${max}]`);
      return v;
    };
    if (a === '--port') opts.port = num(65535);
    else if (a === '--slot-ms') opts.slotMs = num(3600000);
    else if (a === '--ignore-stdin') opts.watchStdin = false;
    else usage(`unknown argument ${a}`);
  }
  return opts;
}

const log = (...parts) => process.stderr.write(`ledger: ${parts.join(' ')}\n`);

// ---------------------------------------------------------------- encodings

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

function b58encode(bytes) {
  const digits = []; // little-endian base-58 digits
  for (const byte of bytes) {
    let carry = byte;
    for (let j = 0; j < digits.length; j++) {
      carry += digits[j] << 8;
      digits[j] = carry % 58;
      carry = (carry / 58) | 0;
    }
    for (; carry; carry = (carry / 58) | 0) digits.push(carry % 58);
  }
  let out = '';
  for (let i = 0; i < bytes.length && bytes[i] === 0; i++) out += '1';
  for (let i = digits.length - 1; i >= 0; i--) out += B58[digits[i]];
  return out;
}

function b58decode(s) {
  const bytes = []; // little-endian
  for (const c of s) {
    let carry = B58.indexOf(c);
    if (carry < 0) return null;
    for (let j = 0; j < bytes.length; j++) {
      carry += bytes[j] * 58;
      bytes[j] = carry & 0xff;
      carry >>= 8;
    }
    for (; carry; carry >>= 8) bytes.push(carry & 0xff);
  }
  for (let i = 0; i < s.length && s[i] === '1'; i++) bytes.push(0);
  return Buffer.from(bytes.reverse());
}

function b64decode(s) {
  if (typeof s !== 'string' || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null;
  return Buffer.from(s, 'base64');
}

// ---------------------------------------------------------------- JSON
// Our own parser and printer: JSON-RPC ids must come back byte for byte (some
// clients use ids above 2^53, which a JS number would round), and u64 values
// (lamports, rentEpoch) must print exactly.

const RAW_ID = Symbol('raw id'); // the source text of an object's "id" member
class Raw { constructor(text) { this.text = text; } } // printed verbatim

const STRING_RE = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const NUMBER_RE = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

function parseJSON(text) {
  let i = 0;
  const fail = () => { throw new SyntaxError(`invalid JSON at offset ${i}`); };
  const space = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
  const match = (re) => {
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m) fail();
    i = re.lastIndex;
    return m;
  };
  // seq reads comma-separated items up to the closing bracket.
  const seq = (close, item) => {
    i++;
    space();
    if (text[i] === close) { i++; return; }
    for (;;) {
      item();
      space();
      if (text[i] === close) { i++; return; }
      if (text[i++] !== ',') fail();
    }
  };
  const value = (depth) => {
    if (depth > 64) fail();
    space();
    const c = text[i];
    if (c === '{') {
      const obj = Object.create(null);
      seq('}', () => {
        space();
        const key = JSON.parse(match(STRING_RE)[0]);
        space();
        if (text[i++] !== ':') fail();
        space();
        const start = i;
        obj[key] = value(depth + 1);
        if (key === 'id') obj[RAW_ID] = text.slice(start, i);
      });
      return obj;
    }
    if (c === '[') {
      const arr = [];
      seq(']', () => arr.push(value(depth + 1)));
      return arr;
    }
    if (c === '"') return JSON.parse(match(STRING_RE)[0]);
    for (const [lit, v] of [['true', true], ['false', false], ['null', null]]) {
      if (text.startsWith(lit, i)) { i += lit.length; return v; }
    }
    const m = match(NUMBER_RE);
    const n = Number(m[0]);
    return !m[1] && !m[2] && !Number.isSafeInteger(n) ? BigInt(m[0]) : n;
  };
  const v = value(0);
  space();
  if (i !== text.length) fail();
  return v;
}

function toJSON(v) {
  if (v instanceof Raw) return v.text;
  if (typeof v === 'bigint') return v.toString();
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map(toJSON).join(',')}]`;
  if (typeof v === 'object') {
    const members = Object.entries(v).filter(([, x]) => x !== undefined);
    return `{${members.map(([k, x]) => `${JSON.stringify(k)}:${toJSON(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

// ---------------------------------------------------------------- errors

class RpcError extends Error {
  constructor(code, message, data) { super(message); this.code = code; this.data = data; }
}
const invalidParams = (msg = 'Invalid params') => new RpcError(-32602, msg);

// Names of LiteSVM's fieldless error enums, in their numeric order.
const TX_ERRORS = ('AccountInUse AccountLoadedTwice AccountNotFound ProgramAccountNotFound InsufficientFundsForFee ' +
  'InvalidAccountForFee AlreadyProcessed BlockhashNotFound CallChainTooDeep MissingSignatureForFee ' +
  'InvalidAccountIndex SignatureFailure InvalidProgramForExecution SanitizeFailure ClusterMaintenance ' +
  'AccountBorrowOutstanding WouldExceedMaxBlockCostLimit UnsupportedVersion InvalidWritableAccount ' +
  'WouldExceedMaxAccountCostLimit WouldExceedAccountDataBlockLimit TooManyAccountLocks ' +
  'AddressLookupTableNotFound InvalidAddressLookupTableOwner InvalidAddressLookupTableData ' +
  'InvalidAddressLookupTableIndex InvalidRentPayingAccount WouldExceedMaxVoteCostLimit ' +
  'WouldExceedAccountDataTotalLimit MaxLoadedAccountsDataSizeExceeded ResanitizationNeeded ' +
  'InvalidLoadedAccountsDataSizeLimit UnbalancedTransaction ProgramCacheHitMaxLimit CommitCancelled').split(' ');
const IX_ERRORS = ('GenericError InvalidArgument InvalidInstructionData InvalidAccountData AccountDataTooSmall ' +
  'InsufficientFunds IncorrectProgramId MissingRequiredSignature AccountAlreadyInitialized ' +
  'UninitializedAccount UnbalancedInstruction ModifiedProgramId ExternalAccountLamportSpend ' +
  'ExternalAccountDataModified ReadonlyLamportChange ReadonlyDataModified DuplicateAccountIndex ' +
  'ExecutableModified RentEpochModified NotEnoughAccountKeys AccountDataSizeChanged ' +
  'AccountNotExecutable AccountBorrowFailed AccountBorrowOutstanding DuplicateAccountOutOfSync ' +
  'InvalidError ExecutableDataModified ExecutableLamportChange ExecutableAccountNotRentExempt ' +
  'UnsupportedProgramId CallDepth MissingAccount ReentrancyNotAllowed MaxSeedLengthExceeded ' +
  'InvalidSeeds InvalidRealloc ComputationalBudgetExceeded PrivilegeEscalation ' +
  'ProgramEnvironmentSetupFailure ProgramFailedToComplete ProgramFailedToCompile Immutable ' +
  'IncorrectAuthority AccountNotRentExempt InvalidAccountOwner ArithmeticOverflow UnsupportedSysvar ' +
  'IllegalOwner MaxAccountsDataAllocationsExceeded MaxAccountsExceeded ' +
  'MaxInstructionTraceLengthExceeded BuiltinProgramsMustConsumeComputeUnits BorshIoError').split(' ');

// txError converts a LiteSVM transaction error to the validator's JSON form.
function txError(e) {
  if (typeof e === 'number') return TX_ERRORS[e] ?? `UnknownError${e}`;
  if (e instanceof svmlib.TransactionErrorInstructionError) {
    const ie = e.err();
    let v;
    if (typeof ie === 'number') v = IX_ERRORS[ie] ?? `UnknownError${ie}`;
    else if (ie instanceof svmlib.InstructionErrorCustom) v = { Custom: ie.code };
    else v = { BorshIoError: ie.msg };
    return { InstructionError: [e.index, v] };
  }
  if (e instanceof svmlib.TransactionErrorDuplicateInstruction) return { DuplicateInstruction: e.index };
  const account = { account_index: e.accountIndex };
  if (e instanceof svmlib.TransactionErrorInsufficientFundsForRent) return { InsufficientFundsForRent: account };
  return { ProgramExecutionTemporarilyRestricted: account };
}

// errorText is the validator's wording of the commonest errors.
function errorText(err) {
  const plain = {
    BlockhashNotFound: 'Blockhash not found',
    AlreadyProcessed: 'This transaction has already been processed',
    AccountNotFound: 'Attempt to debit an account but found no record of a prior credit.',
    InsufficientFundsForFee: 'Insufficient funds for fee',
  };
  if (typeof err === 'string') return plain[err] ?? err;
  if (err.InstructionError) {
    const [i, e] = err.InstructionError;
    const what = e.Custom !== undefined ? `custom program error: 0x${e.Custom.toString(16)}`
      : e === 'MissingRequiredSignature' ? 'missing required signature for instruction'
        : e === 'InsufficientFunds' ? 'insufficient funds for instruction' : toJSON(e);
    return `Error processing Instruction ${i}: ${what}`;
  }
  return toJSON(err);
}

// ---------------------------------------------------------------- transactions

const SYSTEM_PROGRAM = Buffer.alloc(32);
const ADVANCE_NONCE = 4; // SystemInstruction::AdvanceNonceAccount
const NONCE_ACCOUNT_SIZE = 80;
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');

// parseTx decodes and sanitizes a legacy or v0 transaction; it throws an
// RpcError (invalid params) for anything a validator would not deserialize.
function parseTx(bytes) {
  let o = 0;
  const bad = (why) => invalidParams(`invalid transaction: ${why}`);
  const take = (n) => {
    if (o + n > bytes.length) throw bad('too short');
    o += n;
    return bytes.subarray(o - n, o);
  };
  const shortvec = () => {
    let v = 0;
    for (let shift = 0; shift < 21; shift += 7) {
      const b = take(1)[0];
      v |= (b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    throw bad('bad length prefix');
  };
  const signatures = Array.from({ length: shortvec() }, () => take(64));
  const msgStart = o;
  let version = 'legacy';
  if (bytes[o] & 0x80) {
    version = take(1)[0] & 0x7f;
    if (version !== 0) throw bad(`unsupported version ${version}`);
  }
  const [nSigners, nReadonlySigned, nReadonlyUnsigned] = take(3);
  const keys = Array.from({ length: shortvec() }, () => take(32));
  const blockhash = take(32);
  const instructions = Array.from({ length: shortvec() }, () => {
    const program = take(1)[0];
    return { program, accounts: take(shortvec()), data: take(shortvec()) };
  });
  const lookups = [];
  let loaded = 0;
  if (version === 0) {
    for (let n = shortvec(); n > 0; n--) {
      const l = { key: take(32), writable: take(shortvec()), readonly: take(shortvec()) };
      loaded += l.writable.length + l.readonly.length;
      lookups.push(l);
    }
  }
  if (o !== bytes.length) throw bad('trailing bytes');
  const total = keys.length + loaded;
  if (signatures.length !== nSigners) throw bad('signature count does not match the header');
  if (nSigners === 0 || keys.length < nSigners + nReadonlyUnsigned || nReadonlySigned >= nSigners) {
    throw bad('bad message header');
  }
  for (const ix of instructions) {
    if (ix.program === 0 || ix.program >= keys.length || ix.accounts.some((a) => a >= total)) {
      throw bad('account index out of bounds');
    }
  }
  const writable = (i) => i < nSigners - nReadonlySigned || (i >= nSigners && i < keys.length - nReadonlyUnsigned);
  return {
    bytes, signatures, message: bytes.subarray(msgStart), version, header: [nSigners, nReadonlySigned, nReadonlyUnsigned],
    keys, blockhash, instructions, lookups, writable, signature: b58encode(signatures[0]),
  };
}

function signaturesValid(tx) {
  return tx.signatures.every((sig, i) => {
    try {
      const key = crypto.createPublicKey({ key: Buffer.concat([ED25519_SPKI, tx.keys[i]]), format: 'der', type: 'spki' });
      return crypto.verify(null, tx.message, key, sig);
    } catch {
      return false;
    }
  });
}

// ---------------------------------------------------------------- the ledger

class Ledger {
  constructor(pubsub) {
    this.pubsub = pubsub;
    this.svm = new svmlib.LiteSvm();
    this.svm.withNativeMints();
    this.svm.setSigverify(false); // checked here, to answer -32003 like a validator
    this.svm.setBlockhashCheck(false); // the 150-slot window and nonces are checked here
    this.slot = 0;
    this.offsetMs = 0; // cyxwiz_warpTime
    this.window = new Map(); // blockhash -> slot, oldest first
    this.statuses = new Map(); // signature -> landed transaction
    this.byAddress = new Map(); // address -> signatures of its landed transactions, oldest first
    this.advance();
  }

  // advance ends the current slot: a new blockhash, the window trimmed.
  advance() {
    this.svm.expireBlockhash();
    this.slot++;
    this.window.set(this.svm.latestBlockhash(), this.slot);
    for (const [hash, slot] of this.window) {
      if (slot >= this.slot - MAX_AGE) break;
      this.window.delete(hash);
    }
    this.refreshClock();
  }

  refreshClock() {
    const clock = this.svm.getClock();
    clock.slot = BigInt(this.slot);
    clock.unixTimestamp = BigInt(Math.floor((Date.now() + this.offsetMs) / 1000));
    this.svm.setClock(clock);
  }

  latestBlockhash() { return this.svm.latestBlockhash(); }

  account(pubkey) { return this.svm.getAccount(pubkey); }

  // nonceValid reports whether tx is a durable-nonce transaction whose nonce
  // account holds its recent blockhash, with the nonce authority signing.
  nonceValid(tx) {
    const ix = tx.instructions[0];
    if (!ix || !tx.keys[ix.program].equals(SYSTEM_PROGRAM) || ix.data.length < 4 || ix.accounts.length < 1) return false;
    if (Buffer.from(ix.data).readUInt32LE(0) !== ADVANCE_NONCE) return false;
    const idx = ix.accounts[0];
    if (idx >= tx.keys.length || !tx.writable(idx)) return false; // static and writable
    const acct = this.account(tx.keys[idx]);
    if (!acct || !Buffer.from(acct.owner()).equals(SYSTEM_PROGRAM)) return false;
    const data = Buffer.from(acct.data());
    if (data.length !== NONCE_ACCOUNT_SIZE || data.readUInt32LE(4) !== 1) return false; // Initialized
    const authority = data.subarray(8, 40);
    return data.subarray(40, 72).equals(tx.blockhash) &&
      tx.keys.slice(0, tx.header[0]).some((k) => authority.equals(k));
  }

  // check is the validator's age and status-cache check, in its order.
  check(tx) {
    if (!this.window.has(b58encode(tx.blockhash)) && !this.nonceValid(tx)) return 'BlockhashNotFound';
    if (this.statuses.has(tx.signature)) return 'AlreadyProcessed';
    return null;
  }

  fee(tx) { return FEE_PER_SIGNATURE * BigInt(tx.header[0]); }

  // run executes tx (or simulates it) in LiteSVM and returns {err, logs, units}.
  run(tx, simulate) {
    this.refreshClock();
    const kind = tx.version === 'legacy' ? 'Legacy' : 'Versioned';
    let r;
    try {
      r = this.svm[`${simulate ? 'simulate' : 'send'}${kind}Transaction`](tx.bytes);
    } catch (e) {
      throw invalidParams(`invalid transaction: ${e.message}`);
    }
    const failed = r instanceof svmlib.FailedTransactionMetadata;
    const meta = failed || simulate ? r.meta() : r;
    return { err: failed ? txError(r.err()) : null, logs: meta.logs(), units: meta.computeUnitsConsumed() };
  }

  // land executes tx for good, records its status and ends the slot.
  land(tx) {
    const balances = () => tx.keys.map((k) => this.svm.getBalance(k) ?? 0n);
    const pre = balances();
    const nonce = this.nonceValid(tx) ? tx.keys[tx.instructions[0].accounts[0]] : null;
    const blockhash = this.latestBlockhash();
    const res = this.run(tx, false);
    if (typeof res.err === 'string') return res; // failed before execution: nothing lands
    if (nonce) this.advanceNonce(nonce, blockhash);
    this.record(tx.signature, { ...res, tx, fee: this.fee(tx), pre, post: balances() });
    return res;
  }

  // advanceNonce moves a durable nonce on as a validator does once its
  // transaction lands, failed or not: to a value derived from the blockhash
  // of the slot. (LiteSVM derives it from the transaction's own blockhash,
  // which makes the next value predictable, and rolls it back on failure.)
  advanceNonce(key, blockhash) {
    const acct = this.account(key);
    if (!acct || acct.data().length !== NONCE_ACCOUNT_SIZE) return; // closed by the transaction
    const data = Buffer.from(acct.data());
    crypto.createHash('sha256').update('DURABLE_NONCE').update(b58decode(blockhash)).digest().copy(data, 40);
    data.writeBigUInt64LE(FEE_PER_SIGNATURE, 72);
    this.svm.setAccount(key, new svmlib.Account(acct.lamports(), data, acct.owner(), acct.executable(), acct.rentEpoch()));
  }

  // record stores a landed transaction's status, notifies, and ends the slot.
  record(signature, st) {
    st.slot = this.slot;
    st.blockTime = Math.floor((Date.now() + this.offsetMs) / 1000);
    this.statuses.set(signature, st);
    // Like a validator's status cache, remember enough to cover the window.
    if (this.statuses.size > MAX_STATUSES) this.statuses.delete(this.statuses.keys().next().value);
    for (const key of st.tx ? st.tx.keys : []) {
      const address = b58encode(key);
      const list = this.byAddress.get(address) ?? [];
      list.push(signature);
      if (list.length > MAX_SIGNATURES_PER_ADDRESS) list.shift();
      this.byAddress.set(address, list);
    }
    log(`slot ${this.slot}: ${signature.slice(0, 16)}… ${st.err ? `failed: ${toJSON(st.err)}` : 'ok'}`);
    this.pubsub.signature(signature, st);
    this.pubsub.changed();
    this.advance(); // each landed transaction ends its slot
  }

  airdrop(pubkey, lamports) {
    this.refreshClock();
    const r = this.svm.airdrop(pubkey, lamports);
    if (!r || r instanceof svmlib.FailedTransactionMetadata) {
      throw new RpcError(-32603, `airdrop failed: ${r ? errorText(txError(r.err())) : 'no faucet'}`);
    }
    const signature = b58encode(r.signature());
    this.record(signature, { err: null, logs: r.logs(), units: r.computeUnitsConsumed(), fee: FEE_PER_SIGNATURE });
    return signature;
  }
}

// ---------------------------------------------------------------- RPC methods

const ctx = (ledger, value) => ({ context: { slot: ledger.slot }, value });

function arrayParams(params) {
  if (params === undefined || params === null) return [];
  if (!Array.isArray(params)) throw invalidParams();
  return params;
}
const config = (p, i) => (p[i] !== null && typeof p[i] === 'object' && !Array.isArray(p[i]) ? p[i] : Object.create(null));

function pubkeyParam(s) {
  const k = typeof s === 'string' && s.length <= 44 ? b58decode(s) : null;
  if (!k || k.length !== 32) throw invalidParams('Invalid param: Invalid');
  return k;
}

function u64Param(v) {
  const n = typeof v === 'bigint' ? v : Number.isSafeInteger(v) ? BigInt(v) : -1n;
  if (n < 0n || n >= 1n << 64n) throw invalidParams('Invalid param: not a u64');
  return n;
}

function decodeTx(p) {
  const cfg = config(p, 1);
  const encoding = cfg.encoding ?? 'base58';
  if (typeof p[0] !== 'string') throw invalidParams();
  if (p[0].length > 2048) throw invalidParams(`transaction too large: ${p[0].length} encoded bytes`);
  const bytes = encoding === 'base64' ? b64decode(p[0]) : encoding === 'base58' ? b58decode(p[0]) : undefined;
  if (bytes === undefined) throw invalidParams(`unsupported encoding: ${encoding}. Supported encodings: base58, base64`);
  if (!bytes) throw invalidParams(`invalid transaction: not ${encoding}`);
  if (bytes.length > PACKET_DATA_SIZE) {
    throw invalidParams(`transaction too large: ${bytes.length} bytes (max: ${PACKET_DATA_SIZE})`);
  }
  return { tx: parseTx(bytes), cfg };
}

function encodeAccount(acct, cfg) {
  if (!acct) return null;
  let data = Buffer.from(acct.data());
  const space = data.length;
  const encoding = cfg.encoding ?? 'base64';
  if (cfg.dataSlice) {
    const { offset, length } = cfg.dataSlice;
    if (![offset, length].every((n) => Number.isSafeInteger(n) && n >= 0)) throw invalidParams('bad dataSlice');
    data = data.subarray(offset, offset + length);
  }
  let encoded;
  if (encoding === 'base64') encoded = [data.toString('base64'), 'base64'];
  else if (encoding === 'base58') encoded = [b58encode(data), 'base58'];
  else throw invalidParams(`unsupported encoding: ${encoding}. Supported encodings: base58, base64`);
  return {
    data: encoded, executable: acct.executable(), lamports: acct.lamports(),
    owner: b58encode(acct.owner()), rentEpoch: acct.rentEpoch() || RENT_EXEMPT_EPOCH, space,
  };
}

// uiAmountString prints amount / 10^decimals without trailing zeros.
function uiAmountString(amount, decimals) {
  const s = amount.toString().padStart(decimals + 1, '0');
  const whole = s.slice(0, s.length - decimals);
  const frac = s.slice(s.length - decimals).replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : whole;
}

function tokenBalance(ledger, key) {
  const acct = ledger.account(key);
  if (!acct) throw invalidParams('Invalid param: could not find account');
  const data = Buffer.from(acct.data());
  const mint = data.length >= 165 ? ledger.account(data.subarray(0, 32)) : null;
  if (!mint || !Buffer.from(mint.owner()).equals(Buffer.from(acct.owner())) || mint.data().length < 82) {
    throw invalidParams('Invalid param: not a Token account');
  }
  const amount = data.readBigUInt64LE(64);
  const decimals = mint.data()[44];
  const ui = uiAmountString(amount, decimals);
  return { amount: amount.toString(), decimals, uiAmount: Number(ui), uiAmountString: ui };
}

function statusJSON(st) {
  if (!st) return null;
  const status = st.err ? { Err: st.err } : { Ok: null };
  return { slot: st.slot, confirmations: null, err: st.err, status, confirmationStatus: 'finalized' };
}

function transactionJSON(st, cfg) {
  const { tx } = st;
  const encoding = cfg.encoding ?? 'json';
  const enc = encoding === 'base64' ? (b) => Buffer.from(b).toString('base64') : b58encode;
  let transaction = [enc(tx.bytes), encoding];
  if (encoding === 'json') {
    const [numRequiredSignatures, numReadonlySignedAccounts, numReadonlyUnsignedAccounts] = tx.header;
    transaction = {
      signatures: tx.signatures.map(b58encode),
      message: {
        accountKeys: tx.keys.map(b58encode),
        header: { numRequiredSignatures, numReadonlySignedAccounts, numReadonlyUnsignedAccounts },
        recentBlockhash: b58encode(tx.blockhash),
        instructions: tx.instructions.map((ix) => ({
          programIdIndex: ix.program, accounts: [...ix.accounts], data: b58encode(ix.data), stackHeight: null,
        })),
        addressTableLookups: tx.version === 0 ? tx.lookups.map((l) => ({
          accountKey: b58encode(l.key), writableIndexes: [...l.writable], readonlyIndexes: [...l.readonly],
        })) : undefined,
      },
    };
  } else if (encoding !== 'base64' && encoding !== 'base58') throw invalidParams(`unsupported encoding: ${encoding}`);
  return {
    slot: st.slot, blockTime: st.blockTime, version: tx.version, transaction,
    meta: {
      err: st.err, status: st.err ? { Err: st.err } : { Ok: null }, fee: st.fee, preBalances: st.pre, postBalances: st.post,
      innerInstructions: [], logMessages: st.logs, preTokenBalances: [], postTokenBalances: [], rewards: [],
      loadedAddresses: { readonly: [], writable: [] }, computeUnitsConsumed: st.units,
    },
  };
}

function sendTransaction(ledger, p) {
  const { tx, cfg } = decodeTx(p);
  const preflight = !cfg.skipPreflight;
  if (!signaturesValid(tx)) {
    if (preflight) throw new RpcError(-32003, 'Transaction signature verification failure');
    log(`dropped ${tx.signature.slice(0, 16)}…: signature verification failure`);
    return tx.signature; // a leader drops it
  }
  const failure = (err, res = {}) => new RpcError(-32002, `Transaction simulation failed: ${errorText(err)}`, {
    err, logs: res.logs ?? [], accounts: null, unitsConsumed: res.units ?? 0, returnData: null,
    innerInstructions: null, replacementBlockhash: null,
  });
  const early = ledger.check(tx);
  if (early) {
    if (preflight) throw failure(early);
    log(`dropped ${tx.signature.slice(0, 16)}…: ${early}`);
    return tx.signature;
  }
  if (preflight) {
    const sim = ledger.run(tx, true);
    if (sim.err) throw failure(sim.err, sim);
  }
  const res = ledger.land(tx);
  if (typeof res.err === 'string') log(`dropped ${tx.signature.slice(0, 16)}…: ${res.err}`);
  return tx.signature;
}

function simulateTransaction(ledger, p) {
  const { tx, cfg } = decodeTx(p);
  if (cfg.sigVerify && !signaturesValid(tx)) throw new RpcError(-32003, 'Transaction signature verification failure');
  let err = cfg.replaceRecentBlockhash ? null : ledger.check(tx);
  let res = {};
  if (!err) ({ err, ...res } = ledger.run(tx, true));
  return ctx(ledger, {
    err, logs: res.logs ?? [], accounts: null, unitsConsumed: res.units ?? 0, returnData: null,
    replacementBlockhash: cfg.replaceRecentBlockhash
      ? { blockhash: ledger.latestBlockhash(), lastValidBlockHeight: ledger.slot + MAX_AGE } : null,
  });
}

// Methods served over HTTP: (ledger, params array) => result.
const METHODS = {
  getVersion: () => ({ 'solana-core': `litesvm-${LITESVM_VERSION}`, 'feature-set': 0 }),
  getHealth: () => 'ok',
  getSlot: (l) => l.slot,
  getBlockHeight: (l) => l.slot,
  getLatestBlockhash: (l) => ctx(l, { blockhash: l.latestBlockhash(), lastValidBlockHeight: l.slot + MAX_AGE }),
  isBlockhashValid: (l, p) => {
    if (typeof p[0] !== 'string') throw invalidParams();
    return ctx(l, l.window.has(p[0]));
  },
  getMinimumBalanceForRentExemption: (l, p) => {
    if (!Number.isSafeInteger(p[0]) || p[0] < 0 || p[0] > 10 << 20) throw invalidParams();
    return l.svm.minimumBalanceForRentExemption(BigInt(p[0]));
  },
  getBalance: (l, p) => ctx(l, l.svm.getBalance(pubkeyParam(p[0])) ?? 0n),
  getAccountInfo: (l, p) => ctx(l, encodeAccount(l.account(pubkeyParam(p[0])), config(p, 1))),
  getMultipleAccounts: (l, p) => {
    if (!Array.isArray(p[0])) throw invalidParams();
    if (p[0].length > 100) throw invalidParams('Too many inputs provided; max 100');
    const keys = p[0].map(pubkeyParam);
    return ctx(l, keys.map((k) => encodeAccount(l.account(k), config(p, 1))));
  },
  getTokenAccountBalance: (l, p) => ctx(l, tokenBalance(l, pubkeyParam(p[0]))),
  getFeeForMessage: (l, p) => {
    const bytes = typeof p[0] === 'string' ? b64decode(p[0]) : null;
    if (!bytes || bytes.length < 4 || bytes.length > PACKET_DATA_SIZE) throw invalidParams('invalid message');
    // Wrap the message in a transaction with blank signatures to parse it.
    const v0 = bytes[0] & 0x80 ? 1 : 0;
    const tx = parseTx(Buffer.concat([Buffer.from([bytes[v0]]), Buffer.alloc(64 * bytes[v0]), bytes]));
    const valid = l.window.has(b58encode(tx.blockhash)) || l.nonceValid(tx);
    return ctx(l, valid ? l.fee(tx) : null);
  },
  sendTransaction,
  simulateTransaction,
  getSignatureStatuses: (l, p) => {
    if (!Array.isArray(p[0]) || p[0].some((s) => typeof s !== 'string')) throw invalidParams();
    if (p[0].length > 256) throw invalidParams('Too many inputs provided; max 256');
    return ctx(l, p[0].map((s) => statusJSON(l.statuses.get(s))));
  },
  // getSignaturesForAddress lists the landed transactions that name an
  // address among their account keys, newest first, failed ones included.
  getSignaturesForAddress: (l, p) => {
    const address = b58encode(pubkeyParam(p[0]));
    const cfg = config(p, 1);
    const limit = cfg.limit ?? MAX_SIGNATURES_PER_ADDRESS;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_SIGNATURES_PER_ADDRESS) {
      throw invalidParams(`Invalid limit; max ${MAX_SIGNATURES_PER_ADDRESS}`);
    }
    const list = l.byAddress.get(address) ?? [];
    let end = list.length;
    if (typeof cfg.before === 'string') {
      const i = list.lastIndexOf(cfg.before);
      if (i >= 0) end = i;
    }
    const out = [];
    for (let i = end - 1; i >= 0 && out.length < limit; i--) {
      if (list[i] === cfg.until) break;
      const st = l.statuses.get(list[i]);
      if (!st) continue;
      out.push({ signature: list[i], slot: st.slot, err: st.err, memo: null, blockTime: st.blockTime, confirmationStatus: 'finalized' });
    }
    return out;
  },
  getTransaction: (l, p) => {
    const st = typeof p[0] === 'string' ? l.statuses.get(p[0]) : null;
    return st && st.tx ? transactionJSON(st, config(p, 1)) : null;
  },
  requestAirdrop: (l, p) => {
    const lamports = u64Param(p[1]);
    if (lamports === 0n) throw invalidParams('Invalid param: lamports must be positive');
    return l.airdrop(pubkeyParam(p[0]), lamports);
  },

  // Test controls.
  cyxwiz_warpTime: (l, p) => {
    if (typeof p[0] !== 'number' || !(p[0] >= 0 && p[0] <= 1e10)) throw invalidParams('seconds must be in [0, 1e10]');
    l.offsetMs += p[0] * 1000;
    l.refreshClock();
    l.pubsub.changed();
    return { unixTimestamp: l.svm.getClock().unixTimestamp };
  },
  cyxwiz_advanceSlots: (l, p) => {
    if (!Number.isSafeInteger(p[0]) || p[0] < 0 || p[0] > 100000) throw invalidParams('n must be an integer in [0, 100000]');
    for (let i = 0; i < p[0]; i++) l.advance();
    l.pubsub.slot(l.slot);
    l.pubsub.changed();
    return { slot: l.slot };
  },
  cyxwiz_setAccount: (l, p) => {
    const key = pubkeyParam(p[0]);
    const a = config(p, 1);
    const data = b64decode(Array.isArray(a.data) ? a.data[0] : a.data ?? '');
    if (!data) throw invalidParams('data must be base64');
    const owner = a.owner === undefined ? SYSTEM_PROGRAM : pubkeyParam(a.owner);
    try {
      const lamports = u64Param(a.lamports ?? 0);
      l.svm.setAccount(key, new svmlib.Account(lamports, data, owner, a.executable === true, RENT_EXEMPT_EPOCH));
    } catch (e) {
      throw e instanceof RpcError ? e : invalidParams(e.message);
    }
    l.pubsub.changed();
    return null;
  },
};

// ---------------------------------------------------------------- JSON-RPC

// handle answers one request object with a response object.
function handle(ledger, methods, req) {
  const isObject = req !== null && typeof req === 'object' && !Array.isArray(req);
  const idOK = isObject && (req.id === null || ['undefined', 'number', 'bigint', 'string'].includes(typeof req.id));
  const id = idOK && req[RAW_ID] !== undefined && req.id !== null ? new Raw(req[RAW_ID]) : null;
  const reply = (body) => ({ jsonrpc: '2.0', ...body, id });
  try {
    if (!idOK || req.jsonrpc !== '2.0' || typeof req.method !== 'string') throw new RpcError(-32600, 'Invalid request');
    const fn = Object.hasOwn(methods, req.method) ? methods[req.method] : null;
    if (!fn) throw new RpcError(-32601, 'Method not found');
    return reply({ result: fn(ledger, arrayParams(req.params)) ?? null });
  } catch (e) {
    if (!(e instanceof RpcError)) {
      log(`internal error in ${req?.method}: ${e.stack ?? e}`);
      e = new RpcError(-32603, 'Internal error');
    }
    return reply({ error: { code: e.code, message: e.message, data: e.data } });
  }
}

// respond answers a request body (one request or a batch) with JSON text.
function respond(ledger, methods, text) {
  let body;
  try {
    body = parseJSON(text);
  } catch {
    return toJSON({ jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null });
  }
  if (Array.isArray(body)) {
    if (body.length === 0 || body.length > 100) {
      return toJSON({ jsonrpc: '2.0', error: { code: -32600, message: 'Invalid request' }, id: null });
    }
    return toJSON(body.map((r) => handle(ledger, methods, r)));
  }
  return toJSON(handle(ledger, methods, body));
}

// ---------------------------------------------------------------- PubSub

class PubSub {
  constructor() {
    this.subs = new Map(); // subscription id -> {id, ws, kind, key, cfg, last}
    this.next = 1; // 0 reads as "no subscription" to some clients
    this.ledger = null;
  }

  send(sub, method, result) {
    if (sub.ws.readyState !== sub.ws.OPEN) return;
    sub.ws.send(toJSON({ jsonrpc: '2.0', method, params: { result, subscription: sub.id } }));
  }

  accountValue(sub) {
    const acct = encodeAccount(this.ledger.account(sub.key), sub.cfg);
    // A deleted account reads as an empty one owned by the System program.
    const empty = new svmlib.Account(0n, new Uint8Array(), SYSTEM_PROGRAM, false, 0n);
    return acct ?? { ...encodeAccount(empty, sub.cfg), rentEpoch: 0 };
  }

  signature(signature, st) {
    for (const sub of this.subs.values()) {
      if (sub.kind !== 'signature' || sub.key !== signature) continue;
      this.send(sub, 'signatureNotification', { context: { slot: st.slot }, value: { err: st.err } });
      this.subs.delete(sub.id); // signature subscriptions are one-shot
    }
  }

  changed() {
    for (const sub of this.subs.values()) {
      if (sub.kind !== 'account') continue;
      const value = this.accountValue(sub);
      const text = toJSON(value);
      if (text === sub.last) continue;
      sub.last = text;
      this.send(sub, 'accountNotification', { context: { slot: this.ledger.slot }, value });
    }
  }

  slot(slot) {
    for (const sub of this.subs.values()) {
      if (sub.kind === 'slot') this.send(sub, 'slotNotification', { parent: slot - 1, root: slot, slot });
    }
  }

  // methods returns the PubSub methods for one connection.
  methods(ws) {
    const add = (kind, key, cfg) => {
      const sub = { id: this.next++, ws, kind, key, cfg, last: null };
      this.subs.set(sub.id, sub);
      return sub;
    };
    const remove = (kind) => (l, p) => {
      const sub = this.subs.get(p[0]);
      if (!sub || sub.ws !== ws || sub.kind !== kind) throw invalidParams('Invalid subscription id.');
      this.subs.delete(sub.id);
      return true;
    };
    return {
      signatureSubscribe: (l, p) => {
        const sig = typeof p[0] === 'string' && p[0].length <= 88 ? b58decode(p[0]) : null;
        if (!sig || sig.length !== 64) throw invalidParams('Invalid param: Invalid');
        const sub = add('signature', p[0], config(p, 1));
        const st = l.statuses.get(p[0]);
        if (st) setImmediate(() => this.signature(p[0], st)); // after the reply
        return sub.id;
      },
      signatureUnsubscribe: remove('signature'),
      accountSubscribe: (l, p) => {
        const cfg = config(p, 1);
        const sub = add('account', pubkeyParam(p[0]), cfg);
        try {
          sub.last = toJSON(this.accountValue(sub));
        } catch (e) {
          this.subs.delete(sub.id);
          throw e;
        }
        return sub.id;
      },
      accountUnsubscribe: remove('account'),
      slotSubscribe: () => add('slot', null, null).id,
      slotUnsubscribe: remove('slot'),
    };
  }

  drop(ws) {
    for (const sub of this.subs.values()) if (sub.ws === ws) this.subs.delete(sub.id);
  }
}

// ---------------------------------------------------------------- servers

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const pubsub = new PubSub();
  const ledger = new Ledger(pubsub);
  pubsub.ledger = ledger;

  const server = http.createServer((req, res) => {
    const send = (status, type, text) => {
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.method === 'GET' && req.url === '/health') return send(200, 'text/plain', 'ok');
    if (req.method !== 'POST') return send(405, 'text/plain', 'Used HTTP Method is not allowed. POST is required\n');
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY) return send(413, 'text/plain', `request body larger than ${MAX_BODY} bytes\n`);
      send(200, 'application/json', respond(ledger, METHODS, Buffer.concat(chunks).toString('utf8')));
    });
    req.on('error', () => {});
  });

  // Keep idle connections longer than clients do (solana-go: 5 minutes), so
  // that a client never sends a request on a connection the server is closing.
  server.keepAliveTimeout = 10 * 60 * 1000;
  server.headersTimeout = server.keepAliveTimeout + 1000;

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => {});
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  wss.on('connection', (ws) => {
    const methods = pubsub.methods(ws);
    ws.on('message', (data, isBinary) => {
      if (!isBinary) ws.send(respond(ledger, methods, data.toString('utf8')));
    });
    ws.on('close', () => pubsub.drop(ws));
    ws.on('error', (e) => log(`websocket: ${e.message}`));
  });

  const timer = opts.slotMs > 0
    ? setInterval(() => {
      ledger.advance();
      pubsub.slot(ledger.slot);
      pubsub.changed();
    }, opts.slotMs)
    : null;

  let stopping = false;
  const stop = (why) => {
    if (stopping) return;
    stopping = true;
    log(`stopping: ${why}`);
    if (timer) clearInterval(timer);
    for (const ws of wss.clients) ws.terminate();
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (opts.watchStdin) {
    process.stdin.on('end', () => stop('stdin closed'));
    process.stdin.on('error', () => stop('stdin closed'));
    process.stdin.resume();
  }
  process.on('uncaughtException', (e) => log(`uncaught: ${e.stack ?? e}`));

  server.on('error', (e) => {
    log(`listen: ${e.message}`);
    process.exit(1);
  });
  server.listen(opts.port, '127.0.0.1', () => {
    const { port } = server.address();
    process.stdout.write(`${JSON.stringify({ rpc: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}` })}\n`);
    log(`LiteSVM ${LITESVM_VERSION} on 127.0.0.1:${port}, slot every ${opts.slotMs || '∞'} ms`);
  });
}

// Run when executed; the tests import the codecs without starting a server.
if (process.argv[1] && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href) main();

export { b58decode, b58encode, parseJSON, toJSON };
