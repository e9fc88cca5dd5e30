package solana

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/cyxwiz/cyxwiz/settlement"
	sol "github.com/gagliardetto/solana-go"
)

// decodeTx decodes a transaction and insists on its canonical encoding:
// re-encoding it must give back the same bytes, so nothing rides along
// unchecked.
func decodeTx(raw []byte) (*sol.Transaction, error) {
	tx, err := sol.TransactionFromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: decode transaction: %w", settlement.ErrTampered, err)
	}
	again, err := tx.MarshalBinary()
	if err != nil || !bytes.Equal(again, raw) {
		return nil, fmt.Errorf("%w: the transaction is not canonically encoded", settlement.ErrTampered)
	}
	if tx.Message.IsVersioned() || tx.Message.NumLookups() > 0 {
		return nil, fmt.Errorf("%w: a versioned transaction or address lookups", settlement.ErrTampered)
	}
	if len(tx.Signatures) != int(tx.Message.Header.NumRequiredSignatures) {
		return nil, fmt.Errorf("%w: %d signatures for %d signers", settlement.ErrTampered, len(tx.Signatures), tx.Message.Header.NumRequiredSignatures)
	}
	return tx, nil
}

// checkPayout checks a proposed payout against the terms and returns the
// parameters it was built with. The only free parts of a payout are the
// proposer's nonce account and its value, and the amount, which must be at
// least the terms' (checkHeld compares it with the vault); everything else
// follows from the terms and the kind, so the check rebuilds the
// transaction from them and requires the same message, byte for byte. It
// also requires the proposer's valid signature and no co-signer signature
// yet.
func checkPayout(tx *sol.Transaction, t settlement.Terms, p parties, kind settlement.PayoutKind, decimals uint8) (payoutParams, error) {
	if _, _, err := roles(kind, p); err != nil {
		return payoutParams{}, fmt.Errorf("%w: %w", settlement.ErrTampered, err)
	}
	msg := &tx.Message
	nonce, err := nonceOf(msg)
	if err != nil {
		return payoutParams{}, err
	}
	pp := payoutParams{kind: kind, nonce: nonce, nonceValue: msg.RecentBlockhash, amount: t.Amount, decimals: decimals}
	if a, ok := transferAmount(msg, 2); ok {
		pp.amount = a
	}
	if pp.amount < t.Amount {
		return payoutParams{}, fmt.Errorf("%w: pays %d, the terms say %d", settlement.ErrTampered, pp.amount, t.Amount)
	}
	return pp, checkBuilt(tx, t, p, pp)
}

// nonceOf returns the account that a payout's first instruction, the
// nonce advance, names first: the nonce account.
func nonceOf(msg *sol.Message) (sol.PublicKey, error) {
	if len(msg.Instructions) == 0 || len(msg.Instructions[0].Accounts) == 0 ||
		int(msg.Instructions[0].Accounts[0]) >= len(msg.AccountKeys) {
		return sol.PublicKey{}, fmt.Errorf("%w: the transaction does not start by advancing a nonce", settlement.ErrTampered)
	}
	return msg.AccountKeys[msg.Instructions[0].Accounts[0]], nil
}

// transferAmount reads the amount of the i-th instruction when its data
// is a TransferChecked's. What it reads is only a candidate: checkBuilt
// rebuilds the whole message with it.
func transferAmount(msg *sol.Message, i int) (uint64, bool) {
	if i >= len(msg.Instructions) {
		return 0, false
	}
	if d := msg.Instructions[i].Data; len(d) == 10 && d[0] == 12 {
		return binary.LittleEndian.Uint64(d[1:9]), true
	}
	return 0, false
}

// checkBuilt requires that tx's message is, byte for byte, the payout
// that buildPayout makes of the terms and pp, that it carries the
// proposer's valid signature, and that the co-signer's slot is empty.
func checkBuilt(tx *sol.Transaction, t settlement.Terms, p parties, pp payoutParams) error {
	proposer, cosigner, err := roles(pp.kind, p)
	if err != nil {
		return fmt.Errorf("%w: %w", settlement.ErrTampered, err)
	}
	msg := &tx.Message
	want, err := buildPayout(t, p, pp)
	if err != nil {
		return err
	}
	got, err := msg.MarshalBinary()
	if err != nil {
		return fmt.Errorf("%w: encode message: %w", settlement.ErrTampered, err)
	}
	exp, err := want.Message.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode expected payout: %w", err)
	}
	if !bytes.Equal(got, exp) {
		return fmt.Errorf("%w: %s", settlement.ErrTampered, difference(msg, &want.Message))
	}
	for i, k := range msg.Signers() {
		switch {
		case k.Equals(proposer):
			if !proposer.Verify(got, tx.Signatures[i]) {
				return fmt.Errorf("%w: the proposer's signature is not valid", settlement.ErrTampered)
			}
		case k.Equals(cosigner):
			if !tx.Signatures[i].IsZero() {
				return fmt.Errorf("%w: the co-signer's signature slot is not empty", settlement.ErrTampered)
			}
		default:
			return fmt.Errorf("%w: unexpected signer %s", settlement.ErrTampered, k)
		}
	}
	return nil
}

// checkHeld compares what a payout moves (amount, and a split's rest)
// with what the vault holds now. A payout of more than the vault holds is
// not the one the terms allow; one of less is stale: someone sent tokens
// in since it was proposed, and the vault would not close.
func checkHeld(pp payoutParams, held uint64) error {
	pays := fmt.Sprintf("pays %d", pp.amount)
	if pp.kind.IsSplit() {
		pays = fmt.Sprintf("pays %d to the provider and %d back", pp.amount, pp.rest)
	}
	switch {
	case pp.amount > held || pp.rest > held-pp.amount:
		return fmt.Errorf("%w: %s, the vault holds %d", settlement.ErrTampered, pays, held)
	case pp.amount+pp.rest < held:
		return fmt.Errorf("%w: %s, the vault holds %d now", ErrStale, pays, held)
	}
	return nil
}

// difference says how a message differs from the expected one.
func difference(got, want *sol.Message) string {
	g, w := render(got), render(want)
	for i := 0; i < len(g) || i < len(w); i++ {
		switch {
		case i >= len(g):
			return fmt.Sprintf("missing %s", w[i])
		case i >= len(w):
			return fmt.Sprintf("unexpected %s", g[i])
		case g[i] != w[i]:
			return fmt.Sprintf("got %s, want %s", g[i], w[i])
		}
	}
	return "the accounts' order or flags differ from the payout the terms describe"
}

// render lists a message's parts as text, one per line: each instruction
// with its program, accounts (with their flags) and data, then the
// number of instructions, fee payer, blockhash and header.
func render(m *sol.Message) []string {
	var out []string
	metas, err := m.AccountMetaList()
	if err != nil {
		return []string{"undecodable accounts"}
	}
	for i, ci := range m.Instructions {
		var b strings.Builder
		fmt.Fprintf(&b, "instruction %d:", i)
		if int(ci.ProgramIDIndex) < len(m.AccountKeys) {
			fmt.Fprintf(&b, " program %s", m.AccountKeys[ci.ProgramIDIndex])
		}
		for _, a := range ci.Accounts {
			if int(a) >= len(metas) {
				b.WriteString(" <bad account index>")
				continue
			}
			fmt.Fprintf(&b, " %s", metas[a].PublicKey)
			if metas[a].IsSigner {
				b.WriteString("(s)")
			}
			if metas[a].IsWritable {
				b.WriteString("(w)")
			}
		}
		fmt.Fprintf(&b, " data %s", hex.EncodeToString(ci.Data))
		out = append(out, b.String())
	}
	out = append(out, fmt.Sprintf("%d instructions", len(m.Instructions)))
	if len(m.AccountKeys) > 0 {
		out = append(out, "fee payer "+m.AccountKeys[0].String())
	}
	return append(out, "blockhash "+m.RecentBlockhash.String(),
		fmt.Sprintf("header %d/%d/%d", m.Header.NumRequiredSignatures, m.Header.NumReadonlySignedAccounts, m.Header.NumReadonlyUnsignedAccounts))
}

// settled is what a payout did, as payoutOf reads it.
type settled struct {
	paidTo sol.PublicKey
	// returned is what a split paid back to the requester.
	returned uint64
	// refunded: the payee is the requester (the close instruction's
	// destination).
	refunded bool
}

// payoutOf parses a settled payout transaction of vault, as built by
// buildPayout: who it paid (the wallet of its first token account
// creation), whether that was the requester, and what else went out of
// the vault: the rest of a split.
func payoutOf(m *sol.Message, vault sol.PublicKey) (settled, bool) {
	metas, err := m.AccountMetaList()
	if err != nil {
		return settled{}, false
	}
	key := func(ci sol.CompiledInstruction, i int) (sol.PublicKey, bool) {
		if i >= len(ci.Accounts) || int(ci.Accounts[i]) >= len(metas) {
			return sol.PublicKey{}, false
		}
		return metas[ci.Accounts[i]].PublicKey, true
	}
	type transfer struct {
		to, mint sol.PublicKey
		amount   uint64
	}
	var wallet, closedTo sol.PublicKey
	var created, closed bool
	var out []transfer
	for _, ci := range m.Instructions {
		if int(ci.ProgramIDIndex) >= len(m.AccountKeys) {
			return settled{}, false
		}
		prog := m.AccountKeys[ci.ProgramIDIndex]
		switch {
		case prog.Equals(sol.SPLAssociatedTokenAccountProgramID) && bytes.Equal(ci.Data, []byte{1}):
			if !created {
				wallet, created = key(ci, 2)
			}
		case prog.Equals(sol.TokenProgramID) && bytes.Equal(ci.Data, []byte{9}):
			if acct, ok := key(ci, 0); ok && acct.Equals(vault) {
				closedTo, closed = key(ci, 1)
			}
		case prog.Equals(sol.TokenProgramID) && len(ci.Data) == 10 && ci.Data[0] == 12:
			src, ok1 := key(ci, 0)
			mint, ok2 := key(ci, 1)
			dst, ok3 := key(ci, 2)
			if ok1 && ok2 && ok3 && src.Equals(vault) {
				out = append(out, transfer{to: dst, mint: mint, amount: binary.LittleEndian.Uint64(ci.Data[1:9])})
			}
		}
	}
	if !created || !closed {
		return settled{}, false
	}
	s := settled{paidTo: wallet, refunded: wallet.Equals(closedTo)}
	for _, x := range out {
		if !x.to.Equals(ata(wallet, x.mint)) {
			s.returned += x.amount
		}
	}
	return s, true
}
