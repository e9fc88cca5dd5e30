package solana

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement"
	sol "github.com/gagliardetto/solana-go"
)

// NativeMint is the wrapped-SOL mint. Escrows in it lock lamports.
const NativeMint = "So11111111111111111111111111111111111111112"

// Account sizes, in bytes, of the accounts the escrow creates.
const (
	MultisigSize     = 355
	TokenAccountSize = 165
	NonceAccountSize = 80
	MintSize         = 82
)

var nativeMint = sol.MustPublicKeyFromBase58(NativeMint)

// nativeDecimals is the wrapped-SOL mint's decimals.
const nativeDecimals = 9

// parties are the three members of an escrow, by role.
type parties struct {
	requester, provider, arbiter sol.PublicKey
	mint                         sol.PublicKey
}

// parseTerms validates the terms and decodes their addresses.
func parseTerms(t settlement.Terms) (parties, error) {
	if err := t.Validate(); err != nil {
		return parties{}, err
	}
	var p parties
	for _, f := range []struct {
		name string
		in   string
		out  *sol.PublicKey
	}{{"requester", t.Requester, &p.requester}, {"provider", t.Provider, &p.provider},
		{"arbiter", t.Arbiter, &p.arbiter}, {"mint", t.Mint, &p.mint}} {
		k, err := sol.PublicKeyFromBase58(f.in)
		if err != nil {
			return parties{}, fmt.Errorf("%w: %s %q is not an address: %w", settlement.ErrInvalidTerms, f.name, f.in, err)
		}
		*f.out = k
	}
	return p, nil
}

// seed hashes parts, each prefixed by its length, into a 32-character
// seed for CreateAccountWithSeed (the longest seed the System program
// takes): 24 bytes of SHA-256 in URL-safe base64.
func seed(domain string, parts ...[]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range append([][]byte{[]byte(domain)}, parts...) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:24])
}

// multisigSeed is the seed, under the requester's key, of the triple's
// multisig: any party computes it from the provider and the arbiter.
func multisigSeed(p parties) string {
	return seed("cyxwiz/escrow/multisig/1", p.provider[:], p.arbiter[:])
}

// vaultSeed is the seed, under the requester's key, of a job's vault. It
// binds every term, so a vault at this address can only be the one these
// terms describe, and locking the same terms twice finds the same vault.
func vaultSeed(t settlement.Terms, p parties) string {
	var amount, deadline [8]byte
	binary.LittleEndian.PutUint64(amount[:], t.Amount)
	binary.LittleEndian.PutUint64(deadline[:], uint64(t.Deadline.UnixNano()))
	return seed("cyxwiz/escrow/vault/1", []byte(t.JobID), p.requester[:], p.provider[:], p.arbiter[:], p.mint[:], amount[:], deadline[:])
}

// nonceSeed is the seed, under its authority's key, of a party's i-th
// durable nonce account.
func nonceSeed(i int) string { return fmt.Sprintf("cyxwiz-nonce-%d", i) }

func withSeed(base sol.PublicKey, s string, owner sol.PublicKey) sol.PublicKey {
	k, err := sol.CreateWithSeed(base, s, owner)
	if err != nil { // only for seeds over 32 bytes, which ours never are
		panic(err)
	}
	return k
}

// Escrow addresses derived from the terms.
type escrowKeys struct {
	multisig, vault sol.PublicKey
	multisigSeed    string
	vaultSeed       string
}

func deriveKeys(t settlement.Terms, p parties) escrowKeys {
	ms, vs := multisigSeed(p), vaultSeed(t, p)
	return escrowKeys{
		multisig: withSeed(p.requester, ms, sol.TokenProgramID), multisigSeed: ms,
		vault: withSeed(p.requester, vs, sol.TokenProgramID), vaultSeed: vs,
	}
}

// DeriveRef implements settlement.RefDeriver.
func (l *Ledger) DeriveRef(t settlement.Terms) (settlement.Ref, error) { return DeriveRef(t) }

// DeriveRef returns the multisig and vault addresses the terms lock into.
// Any party computes them; Lock creates them.
func DeriveRef(t settlement.Terms) (settlement.Ref, error) {
	p, err := parseTerms(t)
	if err != nil {
		return settlement.Ref{}, err
	}
	k := deriveKeys(t, p)
	return settlement.Ref{Multisig: k.multisig.String(), Vault: k.vault.String()}, nil
}

// ata returns owner's associated token account for mint under the classic
// Token program.
func ata(owner, mint sol.PublicKey) sol.PublicKey {
	a, _, err := sol.FindAssociatedTokenAddress(owner, mint)
	if err != nil { // cannot happen: some bump always gives an address off the curve
		panic(err)
	}
	return a
}

// memo is the text of a lock's memo: the job's terms.
func memo(t settlement.Terms) []byte {
	b, _ := json.Marshal(struct {
		Escrow   string `json:"cyxwiz_escrow"`
		Job      string `json:"job"`
		Amount   uint64 `json:"amount"`
		Mint     string `json:"mint"`
		Deadline string `json:"deadline"`
	}{"1", t.JobID, t.Amount, t.Mint, t.Deadline.UTC().Format(time.RFC3339Nano)})
	return b
}

// Instruction builders. They write the programs' wire formats directly
// rather than through solana-go's builders, so the account flags are
// exactly the ones the programs expect (solana-go's InitializeMultisig
// marks the members as signers, for one).

func meta(k sol.PublicKey, writable, signer bool) *sol.AccountMeta {
	return &sol.AccountMeta{PublicKey: k, IsWritable: writable, IsSigner: signer}
}

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func createAccountWithSeed(funder, created, base sol.PublicKey, s string, lamports, space uint64, owner sol.PublicKey) sol.Instruction {
	data := u32(3)
	data = append(data, base[:]...)
	data = binary.LittleEndian.AppendUint64(data, uint64(len(s)))
	data = append(data, s...)
	data = binary.LittleEndian.AppendUint64(data, lamports)
	data = binary.LittleEndian.AppendUint64(data, space)
	data = append(data, owner[:]...)
	return sol.NewInstruction(sol.SystemProgramID, sol.AccountMetaSlice{
		meta(funder, true, true), meta(created, true, false), meta(base, false, true),
	}, data)
}

func createAccount(funder, created sol.PublicKey, lamports, space uint64, owner sol.PublicKey) sol.Instruction {
	data := u32(0)
	data = binary.LittleEndian.AppendUint64(data, lamports)
	data = binary.LittleEndian.AppendUint64(data, space)
	data = append(data, owner[:]...)
	return sol.NewInstruction(sol.SystemProgramID, sol.AccountMetaSlice{
		meta(funder, true, true), meta(created, true, true),
	}, data)
}

func initializeNonce(nonce, authority sol.PublicKey) sol.Instruction {
	return sol.NewInstruction(sol.SystemProgramID, sol.AccountMetaSlice{
		meta(nonce, true, false), meta(sol.SysVarRecentBlockHashesPubkey, false, false), meta(sol.SysVarRentPubkey, false, false),
	}, append(u32(6), authority[:]...))
}

func advanceNonce(nonce, authority sol.PublicKey) sol.Instruction {
	return sol.NewInstruction(sol.SystemProgramID, sol.AccountMetaSlice{
		meta(nonce, true, false), meta(sol.SysVarRecentBlockHashesPubkey, false, false), meta(authority, false, true),
	}, u32(4))
}

func initializeMultisig2(multisig sol.PublicKey, m uint8, members ...sol.PublicKey) sol.Instruction {
	accts := sol.AccountMetaSlice{meta(multisig, true, false)}
	for _, k := range members {
		accts = append(accts, meta(k, false, false)) // members do not sign
	}
	return sol.NewInstruction(sol.TokenProgramID, accts, []byte{19, m})
}

func initializeMint2(mint sol.PublicKey, decimals uint8, authority sol.PublicKey) sol.Instruction {
	data := append([]byte{20, decimals}, authority[:]...)
	data = append(data, 0) // no freeze authority
	return sol.NewInstruction(sol.TokenProgramID, sol.AccountMetaSlice{meta(mint, true, false)}, data)
}

func mintTo(mint, dest, authority sol.PublicKey, amount uint64) sol.Instruction {
	return sol.NewInstruction(sol.TokenProgramID, sol.AccountMetaSlice{
		meta(mint, true, false), meta(dest, true, false), meta(authority, false, true),
	}, binary.LittleEndian.AppendUint64([]byte{7}, amount))
}

func initializeAccount3(account, mint, owner sol.PublicKey) sol.Instruction {
	return sol.NewInstruction(sol.TokenProgramID, sol.AccountMetaSlice{
		meta(account, true, false), meta(mint, false, false),
	}, append([]byte{18}, owner[:]...))
}

func syncNative(account sol.PublicKey) sol.Instruction {
	return sol.NewInstruction(sol.TokenProgramID, sol.AccountMetaSlice{meta(account, true, false)}, []byte{17})
}

// authority returns the authority accounts of a token instruction: a
// single signing owner, or a multisig followed by its signing members.
func authority(owner sol.PublicKey, signers []sol.PublicKey) sol.AccountMetaSlice {
	if len(signers) == 0 {
		return sol.AccountMetaSlice{meta(owner, false, true)}
	}
	out := sol.AccountMetaSlice{meta(owner, false, false)}
	for _, s := range signers {
		out = append(out, meta(s, false, true))
	}
	return out
}

func transferChecked(src, mint, dst, owner sol.PublicKey, signers []sol.PublicKey, amount uint64, decimals uint8) sol.Instruction {
	data := binary.LittleEndian.AppendUint64([]byte{12}, amount)
	data = append(data, decimals)
	accts := sol.AccountMetaSlice{meta(src, true, false), meta(mint, false, false), meta(dst, true, false)}
	return sol.NewInstruction(sol.TokenProgramID, append(accts, authority(owner, signers)...), data)
}

func closeAccount(account, dst, owner sol.PublicKey, signers []sol.PublicKey) sol.Instruction {
	accts := sol.AccountMetaSlice{meta(account, true, false), meta(dst, true, false)}
	return sol.NewInstruction(sol.TokenProgramID, append(accts, authority(owner, signers)...), []byte{9})
}

func createATAIdempotent(payer, wallet, mint sol.PublicKey) sol.Instruction {
	return sol.NewInstruction(sol.SPLAssociatedTokenAccountProgramID, sol.AccountMetaSlice{
		meta(payer, true, true), meta(ata(wallet, mint), true, false), meta(wallet, false, false),
		meta(mint, false, false), meta(sol.SystemProgramID, false, false), meta(sol.TokenProgramID, false, false),
	}, []byte{1})
}

func memoInstruction(text []byte) sol.Instruction {
	return sol.NewInstruction(sol.MemoProgramID, sol.AccountMetaSlice{}, text)
}

// key returns the account of a role.
func (p parties) key(r settlement.Role) sol.PublicKey {
	switch r {
	case settlement.RoleRequester:
		return p.requester
	case settlement.RoleProvider:
		return p.provider
	}
	return p.arbiter
}

// roles returns who proposes and who co-signs a payout of kind.
func roles(kind settlement.PayoutKind, p parties) (proposer, cosigner sol.PublicKey, err error) {
	pr, co, _, err := kind.Roles()
	return p.key(pr), p.key(co), err
}

// recipient returns who a payout of kind pays. It is always one of the two
// signers, and it pays the fee.
func recipient(kind settlement.PayoutKind, p parties) sol.PublicKey {
	_, _, payee, _ := kind.Roles()
	return p.key(payee)
}

// payoutParams are what a payout transaction is built from besides the
// terms: the proposer's durable nonce, the amount and the mint's decimals.
type payoutParams struct {
	kind       settlement.PayoutKind
	nonce      sol.PublicKey // the proposer's nonce account
	nonceValue sol.Hash      // its stored nonce, used as the recent blockhash
	// amount is all the vault holds: the terms' amount, and whatever
	// anyone sent in on top, which would otherwise keep the vault from
	// closing and so block every payout. For a split it is the
	// provider's part, and rest the remainder, which goes back to the
	// requester: together they are all the vault holds.
	amount   uint64
	rest     uint64
	decimals uint8
}

// buildPayout builds the unsigned payout transaction: advance the
// proposer's nonce, create the recipient's token account if absent, move
// everything in the vault to it with the multisig signed by proposer and
// co-signer, and close the vault, its rent going back to the requester.
// The recipient pays the fee.
func buildPayout(t settlement.Terms, p parties, pp payoutParams) (*sol.Transaction, error) {
	if pp.kind.IsSplit() {
		return buildSplit(t, p, pp)
	}
	proposer, cosigner, err := roles(pp.kind, p)
	if err != nil {
		return nil, err
	}
	k := deriveKeys(t, p)
	to := recipient(pp.kind, p)
	signers := []sol.PublicKey{proposer, cosigner}
	tx, err := sol.NewTransaction([]sol.Instruction{
		advanceNonce(pp.nonce, proposer),
		createATAIdempotent(to, to, p.mint),
		transferChecked(k.vault, p.mint, ata(to, p.mint), k.multisig, signers, pp.amount, pp.decimals),
		closeAccount(k.vault, p.requester, k.multisig, signers),
	}, pp.nonceValue, sol.TransactionPayer(to))
	if err != nil {
		return nil, fmt.Errorf("build %s payout: %w", pp.kind, err)
	}
	return tx, nil
}
