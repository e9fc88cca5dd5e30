package market

import (
	"testing"
	"time"
)

// BenchmarkOpenAnnouncement is the work a provider does per announcement
// before deciding to bid: decode the envelope, check the signature, decode
// and validate the announcement.
func BenchmarkOpenAnnouncement(b *testing.B) {
	key, id := newKeyB(b)
	spec, err := ParseSpec([]byte(validSpec()))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	env, err := Seal(key, TypeAnnouncement, Announcement{JobID: "01J0000000000000000000000A", Requester: id.String(), Attempt: 1,
		Spec: spec, IssuedAt: now, BidsUntil: now.Add(time.Second)})
	if err != nil {
		b.Fatal(err)
	}
	data, _ := env.Marshal()
	b.ReportAllocs()
	for b.Loop() {
		e, err := ParseEnvelope(data)
		if err != nil {
			b.Fatal(err)
		}
		var a Announcement
		signer, err := e.Open(TypeAnnouncement, &a)
		if err != nil {
			b.Fatal(err)
		}
		if err := CheckAnnouncement(a, signer, now); err != nil {
			b.Fatal(err)
		}
	}
}
