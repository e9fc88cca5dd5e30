package jobs

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	bolt "go.etcd.io/bbolt"
)

// Roles of this node in a job.
const (
	RoleRequester = "requester"
	RoleProvider  = "provider"
)

// ErrNotFound: no job with that ID.
var ErrNotFound = errors.New("no such job")

// Event is one step in a job's history.
type Event struct {
	Time   time.Time    `json:"time"`
	State  market.State `json:"state"`
	Detail string       `json:"detail,omitempty"`
}

// Job is one job as this node sees it, requester or provider.
type Job struct {
	ID        string       `json:"id"`
	Role      string       `json:"role"`
	State     market.State `json:"state"`
	Attempt   int          `json:"attempt"`
	Spec      market.Spec  `json:"spec"`
	Requester string       `json:"requester"`
	Provider  string       `json:"provider,omitempty"`
	Price     uint64       `json:"price,omitempty"`
	Deadline  time.Time    `json:"deadline,omitempty"`
	Excluded  []string     `json:"excluded,omitempty"`
	// WaitingSince is when the job last went looking for a provider.
	WaitingSince time.Time      `json:"waiting_since,omitempty"`
	Result       *market.Result `json:"result,omitempty"`
	// Escrows are the job's escrows, one per award of a priced job (on
	// the provider, the one of its award).
	Escrows []EscrowRecord `json:"escrows,omitempty"`
	// Ack keeps the provider's signed ack of the current attempt's award,
	// which the attempt's receipt carries.
	Ack *market.Envelope `json:"ack,omitempty"`
	// ResultEnvelope keeps the provider's signed result as evidence.
	ResultEnvelope *market.Envelope `json:"result_envelope,omitempty"`
	// RequesterAddrs is where a provider reaches the requester.
	RequesterAddrs []string `json:"requester_addrs,omitempty"`
	// ProviderAddrs is where the requester reached the awarded provider,
	// kept so that it finds the provider again after a restart.
	ProviderAddrs []string `json:"provider_addrs,omitempty"`
	// Outcomes are the requester's record of the attempts whose provider
	// acked, each with its signed receipt.
	Outcomes []AttemptOutcome `json:"outcomes,omitempty"`
	// Replicas are, for a replicated job, the IDs of its replicas: each a
	// job of its own, run by its own provider (see replicate.go).
	Replicas []string `json:"replicas,omitempty"`
	// Spot is, for a job whose spec asks for spot checks, the draw made
	// at submit: SpotChecked or SpotUnchecked (see spot.go).
	Spot string `json:"spot,omitempty"`
	// Parent is, for a replica, the replicated job it belongs to, and
	// Verdict how its result compared with the others' once that job
	// decided (a Verdict value; "" until then).
	Parent  string `json:"parent,omitempty"`
	Verdict string `json:"verdict,omitempty"`
	// Payee is a replica's provider's ledger account, from its bid, kept
	// so that no other replica goes to the same account.
	Payee     string    `json:"payee,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Events    []Event   `json:"events"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// move changes the job's state, recording the step.
func (j *Job) move(to market.State, detail string) error {
	if err := market.CanMove(j.State, to); err != nil {
		return err
	}
	from := j.State
	j.State = to
	j.UpdatedAt = time.Now().UTC()
	j.Events = append(j.Events, Event{Time: j.UpdatedAt, State: to, Detail: detail})
	if to == market.StateFailed || to == market.StateCancelled {
		j.Reason = detail
	}
	j.recordOutcome(from, to, detail)
	return nil
}

// store keeps jobs in bbolt, one bucket per role.
type store struct {
	db *bolt.DB
}

func openStore(db *bolt.DB) (*store, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{RoleRequester, RoleProvider} {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open job store: %w", err)
	}
	return &store{db: db}, nil
}

func (s *store) put(j *Job) error {
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(j.Role)).Put(storeKey(j.ID, j.Attempt, j.Role), data)
	})
}

// storeKey: a requester keeps one record per job; a provider one per
// attempt it ran (a job may come back to it after a re-auction).
func storeKey(id string, attempt int, role string) []byte {
	if role == RoleProvider {
		return []byte(fmt.Sprintf("%s/%03d", id, attempt))
	}
	return []byte(id)
}

// putAll stores several requester jobs in one transaction.
func (s *store) putAll(jobs []*Job) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, j := range jobs {
			data, err := json.Marshal(j)
			if err != nil {
				return err
			}
			if err := tx.Bucket([]byte(j.Role)).Put(storeKey(j.ID, j.Attempt, j.Role), data); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *store) get(role, id string, attempt int) (*Job, error) {
	var j Job
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(role)).Get(storeKey(id, attempt, role))
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return json.Unmarshal(v, &j)
	})
	if err != nil {
		return nil, err
	}
	return &j, nil
}

// list returns the role's jobs, newest first.
func (s *store) list(role string) ([]*Job, error) {
	var out []*Job
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(role)).ForEach(func(_, v []byte) error {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return err
			}
			out = append(out, &j)
			return nil
		})
	})
	sort.Slice(out, func(i, k int) bool { return out[i].CreatedAt.After(out[k].CreatedAt) })
	return out, err
}

// newJobID returns a 26-character ID: 48 bits of milliseconds then 80
// random bits, in Crockford base32, so IDs sort by creation time.
func newJobID() string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	rand.Read(b[6:])
	var sb strings.Builder
	var acc uint64
	bits := 0
	for _, x := range b {
		acc = acc<<8 | uint64(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			sb.WriteByte(alphabet[(acc>>uint(bits))&31])
		}
	}
	sb.WriteByte(alphabet[(acc<<uint(5-bits))&31])
	return sb.String()[:26]
}

// vaultsBucket maps the escrow vaults a provider accepted to the award
// each pays for.
const vaultsBucket = "escrow-vaults"

// claimVault records that vault pays for the award (job, attempt), and
// reports false when it pays for another award already: one escrow pays
// for one award.
func (s *store) claimVault(vault, jobID string, attempt int) (bool, error) {
	val := []byte(fmt.Sprintf("%s/%d", jobID, attempt))
	ok := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(vaultsBucket))
		if err != nil {
			return err
		}
		if old := b.Get([]byte(vault)); old != nil {
			ok = string(old) == string(val)
			return nil
		}
		ok = true
		return b.Put([]byte(vault), val)
	})
	return ok, err
}
