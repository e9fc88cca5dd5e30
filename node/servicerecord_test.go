package node

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/market"
)

func sealedService(t *testing.T, k crypto.PrivKey, r market.ServiceRecord) []byte {
	t.Helper()
	env, err := market.Seal(k, market.TypeService, r)
	if err != nil {
		t.Fatal(err)
	}
	data, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestServiceRecordValidator: the DHT keeps a service record only under
// its signer's key and its own service's name, and prefers the newest.
func TestServiceRecordValidator(t *testing.T) {
	newKey := func() (crypto.PrivKey, peer.ID) {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(k)
		return k, id
	}
	provKey, prov := newKey()
	impKey, _ := newKey()
	now := time.Now().UTC()
	rec := market.ServiceRecord{Service: "digits", Model: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
		Provider: prov.String(), InputSize: 784, OutputSize: 10, MaxExamples: 64, MaxRequestBytes: 1 << 20, MaxPerCaller: 8,
		Seq: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	v := recordValidator{}
	key := serviceRecordKey(prov, "digits")
	good := sealedService(t, provKey, rec)
	if err := v.Validate(key, good); err != nil {
		t.Fatalf("a good record: %v", err)
	}
	forged := rec
	if err := v.Validate(key, sealedService(t, impKey, forged)); err == nil {
		t.Error("a record signed by another peer under the provider's key was accepted")
	}
	if err := v.Validate(serviceRecordKey(prov, "other"), good); err == nil || !strings.Contains(err.Error(), "under") {
		t.Errorf("a record under another service's name: %v", err)
	}
	if err := v.Validate(serviceRecordKey(prov, "digits")+"/x", good); err == nil {
		t.Error("a record under a longer key was accepted")
	}
	stale := rec
	stale.IssuedAt, stale.ExpiresAt = now.Add(-2*time.Hour), now.Add(-time.Hour)
	if err := v.Validate(key, sealedService(t, provKey, stale)); err == nil {
		t.Error("an expired record was accepted")
	}
	if err := v.Validate(key, []byte("{not json")); err == nil {
		t.Error("garbage was accepted")
	}
	newer := rec
	newer.Seq = 2
	if i, err := v.Select(key, [][]byte{good, []byte("x"), sealedService(t, provKey, newer)}); err != nil || i != 2 {
		t.Errorf("Select = %d, %v; want the newest, 2", i, err)
	}
	// Capacity records still go to their own validator.
	if err := v.Validate(capacityKey(prov), good); err == nil {
		t.Error("a service record under a capacity key was accepted")
	}
}
