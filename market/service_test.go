package market

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement"
)

const testModelCID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

func testOffer(provider, arbiter string) ServiceRecord {
	now := time.Now()
	return ServiceRecord{Service: "digits", Model: testModelCID, Provider: provider,
		PricePerCall: 3, Mint: "MINT", Payee: "PROV", ArbiterPeer: arbiter,
		InputSize: 784, OutputSize: 10, MaxExamples: 64, MaxRequestBytes: 1 << 20, MaxPerCaller: 8,
		Seq: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
}

func TestServiceRecordChecks(t *testing.T) {
	_, prov := newKey(t)
	_, arb := newKey(t)
	_, other := newKey(t)
	now := time.Now()
	good := testOffer(prov.String(), arb.String())
	if err := CheckServiceRecord(good, prov, now); err != nil {
		t.Fatalf("a good record: %v", err)
	}
	for name, edit := range map[string]func(*ServiceRecord){
		"signed by another":  func(r *ServiceRecord) { r.Provider = other.String() },
		"bad name":           func(r *ServiceRecord) { r.Service = "../x" },
		"expired":            func(r *ServiceRecord) { r.ExpiresAt = now.Add(-time.Second) },
		"future":             func(r *ServiceRecord) { r.IssuedAt = now.Add(time.Hour) },
		"lives too long":     func(r *ServiceRecord) { r.ExpiresAt = r.IssuedAt.Add(25 * time.Hour) },
		"no input":           func(r *ServiceRecord) { r.InputSize = 0 },
		"priced, no payee":   func(r *ServiceRecord) { r.Payee = "" },
		"priced, no arbiter": func(r *ServiceRecord) { r.ArbiterPeer = "" },
		"bad model":          func(r *ServiceRecord) { r.Model = "not-a-cid" },
		"bad arbiter":        func(r *ServiceRecord) { r.ArbiterPeer = "nobody" },
		"too many addrs":     func(r *ServiceRecord) { r.Addrs = make([]string, 17) },
		"long field":         func(r *ServiceRecord) { r.Mint = strings.Repeat("M", 10000) },
	} {
		r := good
		edit(&r)
		if err := CheckServiceRecord(r, prov, now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBudgetID(t *testing.T) {
	_, caller := newKey(t)
	id := BudgetID(caller, "01J")
	got, err := BudgetCaller(id)
	if err != nil || got != caller {
		t.Fatalf("BudgetCaller(%q) = %s, %v", id, got, err)
	}
	for _, bad := range []string{"job/1", "budget/", "budget/" + caller.String(), "budget/" + caller.String() + "/", "budget/nobody/1"} {
		if _, err := BudgetCaller(bad); err == nil {
			t.Errorf("BudgetCaller(%q) accepted", bad)
		}
	}
}

func testBudget(caller string, offer ServiceRecord, amount uint64) Budget {
	return Budget{Service: offer.Service, PricePerCall: offer.PricePerCall, Escrow: EscrowTerms{
		Terms: settlement.Terms{JobID: caller, Requester: "CALLER", Provider: offer.Payee, Arbiter: "ARB",
			Mint: offer.Mint, Amount: amount, Deadline: time.Now().Add(time.Hour)},
		Ref:         settlement.Ref{Multisig: "MS", Vault: "V"},
		ArbiterPeer: offer.ArbiterPeer}}
}

func TestBudgetChecks(t *testing.T) {
	_, caller := newKey(t)
	_, other := newKey(t)
	_, prov := newKey(t)
	_, arb := newKey(t)
	offer := testOffer(prov.String(), arb.String())
	good := testBudget(BudgetID(caller, "1"), offer, 30)
	if err := good.Check(caller, offer); err != nil {
		t.Fatalf("a good budget: %v", err)
	}
	for name, edit := range map[string]func(*Budget){
		"another's budget":  func(b *Budget) { b.Escrow.JobID = BudgetID(other, "1") },
		"not a budget":      func(b *Budget) { b.Escrow.JobID = "job/1" },
		"other service":     func(b *Budget) { b.Service = "other" },
		"cheaper":           func(b *Budget) { b.PricePerCall = 1 },
		"pays for no call":  func(b *Budget) { b.Escrow.Amount = 2 },
		"pays someone else": func(b *Budget) { b.Escrow.Provider = "SOMEONE" },
		"other arbiter":     func(b *Budget) { b.Escrow.ArbiterPeer = other.String() },
		"other mint":        func(b *Budget) { b.Escrow.Mint = "OTHER" },
		"no vault":          func(b *Budget) { b.Escrow.Vault = "" },
	} {
		b := good
		edit(&b)
		if err := b.Check(caller, offer); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestVoucherAttacks(t *testing.T) {
	callerKey, caller := newKey(t)
	otherKey, _ := newKey(t)
	id := BudgetID(caller, "1")
	seal := func(k interface{}, v Voucher) Envelope {
		t.Helper()
		env, err := Seal(callerKey, TypeVoucher, v)
		if k != nil {
			env, err = Seal(otherKey, TypeVoucher, v)
		}
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	if v, err := OpenVoucher(seal(nil, Voucher{Budget: id, Amount: 9}), id, 30); err != nil || v.Amount != 9 {
		t.Fatalf("a good voucher: %+v, %v", v, err)
	}
	if _, err := OpenVoucher(seal(otherKey, Voucher{Budget: id, Amount: 9}), id, 30); !errors.Is(err, ErrVoucherSigner) {
		t.Errorf("signed by another: %v", err)
	}
	if _, err := OpenVoucher(seal(nil, Voucher{Budget: id, Amount: 31}), id, 30); !errors.Is(err, ErrVoucherInflated) {
		t.Errorf("over the budget: %v", err)
	}
	if _, err := OpenVoucher(seal(nil, Voucher{Budget: BudgetID(caller, "2"), Amount: 3}), id, 30); err == nil || !strings.Contains(err.Error(), "not") {
		t.Errorf("for another budget: %v", err)
	}
	env := seal(nil, Voucher{Budget: id, Amount: 3})
	env.Payload = []byte(strings.Replace(string(env.Payload), `"amount":3`, `"amount":30`, 1))
	if _, err := OpenVoucher(env, id, 30); !errors.Is(err, ErrBadSignature) {
		t.Errorf("edited amount: %v", err)
	}
	env = seal(nil, Voucher{Budget: id, Amount: 3})
	env.Type = TypeBudget
	if _, err := OpenVoucher(env, id, 30); !errors.Is(err, ErrWrongType) {
		t.Errorf("another type: %v", err)
	}

	for _, c := range []struct {
		amount, paid uint64
		want         error
	}{{6, 3, nil}, {3, 3, ErrVoucherReused}, {0, 3, ErrVoucherLowered}, {9, 3, ErrVoucherInflated}, {4, 3, ErrVoucherInflated}} {
		err := NextVoucher(Voucher{Budget: id, Amount: c.amount}, c.paid, 3)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("NextVoucher(%d after %d) = %v, want %v", c.amount, c.paid, err, c.want)
		}
	}
}
