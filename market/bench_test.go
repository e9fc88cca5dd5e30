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
	// The signature check alone, in the same run: the floor of the cost.
	pub := key.GetPublic()
	signed := signedBytes(env.Type, env.Payload)
	t0 := time.Now()
	const floorRounds = 200
	for range floorRounds {
		if ok, err := pub.Verify(signed, env.Signature); !ok || err != nil {
			b.Fatal("the signature does not verify")
		}
	}
	floor := time.Since(t0) / floorRounds
	b.ReportAllocs()
	t1 := time.Now()
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
	per := time.Since(t1) / time.Duration(b.N)
	b.ReportMetric(float64(floor.Nanoseconds())/1000, "verify-µs")
	b.ReportMetric(float64(per.Nanoseconds())/float64(floor.Nanoseconds()), "x-verify")
}
