package market

import (
	"sort"
	"time"
)

// Outcomes counts this node's past jobs with one provider.
type Outcomes struct {
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
}

// Reputation is the expected success rate under a uniform prior: 0.5 for a
// stranger, towards 1 with every success and towards 0 with every failure.
func (o Outcomes) Reputation() float64 {
	return float64(1+o.Succeeded) / float64(2+o.Succeeded+o.Failed)
}

// Candidate is a bid with what the requester knows of its provider.
type Candidate struct {
	Bid        Bid
	Reputation float64       // 0..1
	Latency    time.Duration // round trip to the provider; 0 if unknown
	Relayed    bool          // reached through a relay
}

// Weights of the scoring terms; they sum to 1.
const (
	weightPrice      = 0.4
	weightReputation = 0.3
	weightQueue      = 0.2
	weightLatency    = 0.1
)

// Score rates a candidate in 0..1 (higher is better) for a job whose price
// cap is maxPrice (0: no cap, price is then compared with refPrice, the
// cheapest bid).
func Score(c Candidate, maxPrice, refPrice uint64) float64 {
	var price float64
	switch {
	case maxPrice > 0:
		price = 1 - float64(c.Bid.Price)/float64(maxPrice)
	case c.Bid.Price == 0:
		price = 1
	default:
		price = float64(refPrice) / float64(c.Bid.Price)
	}
	queue := 1 / float64(1+c.Bid.QueueDepth)
	latency := 1.0
	if c.Latency > 0 {
		latency = 1 / (1 + c.Latency.Seconds()/0.05) // 50 ms halves it
	}
	if c.Relayed {
		latency /= 2
	}
	return weightPrice*price + weightReputation*c.Reputation + weightQueue*queue + weightLatency*latency
}

// Rank orders candidates best first. Ties go to the lower price, then to
// the provider ID, so that the order is deterministic.
func Rank(cs []Candidate, maxPrice uint64) []Candidate {
	out := append([]Candidate(nil), cs...)
	var ref uint64
	for i, c := range out {
		if i == 0 || c.Bid.Price < ref {
			ref = c.Bid.Price
		}
	}
	scores := make(map[string]float64, len(out))
	for _, c := range out {
		scores[c.Bid.Provider] = Score(c, maxPrice, ref)
	}
	sort.SliceStable(out, func(i, j int) bool {
		si, sj := scores[out[i].Bid.Provider], scores[out[j].Bid.Provider]
		if si != sj {
			return si > sj
		}
		if out[i].Bid.Price != out[j].Bid.Price {
			return out[i].Bid.Price < out[j].Bid.Price
		}
		return out[i].Bid.Provider < out[j].Bid.Provider
	})
	return out
}
