package indexer

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/market"
)

// The rows of indexdb, made from the swarm's signed messages. Each
// function checks the message in full first: the indexer trusts no
// topic validator, its own included.

// CapacityRow checks a signed capacity record (a DHT value) and makes
// its row; the check uses the record's own issue time, so that a record
// seen late still counts for the time it covered.
func CapacityRow(value []byte, seen time.Time) (indexdb.Capacity, error) {
	env, err := market.ParseEnvelope(value)
	if err != nil {
		return indexdb.Capacity{}, err
	}
	var c market.Capacity
	signer, err := env.Open(market.TypeCapacity, &c)
	if err != nil {
		return indexdb.Capacity{}, err
	}
	if err := market.CheckCapacity(c, signer, c.IssuedAt); err != nil {
		return indexdb.Capacity{}, fmt.Errorf("capacity record: %w", err)
	}
	if c.IssuedAt.After(seen.Add(market.MaxClockSkew)) {
		return indexdb.Capacity{}, errors.New("capacity record is dated in the future")
	}
	row := indexdb.Capacity{
		Peer: c.Peer, Seq: c.Seq, IssuedAt: c.IssuedAt.UTC(), ExpiresAt: c.ExpiresAt.UTC(), SeenAt: seen.UTC(),
		CPUCores: c.CPUCores, MemoryMiB: c.MemoryMiB, DiskMiB: c.DiskMiB, Executors: c.Executors,
		PricePerCPUSecond: c.Prices.PerCPUSecond, PriceMinimum: c.Prices.Minimum, Mint: c.Prices.Mint,
		BenchScore: c.BenchScore, Record: value,
	}
	for _, g := range c.GPUs {
		row.GPUs = append(row.GPUs, indexdb.GPU{Model: g.Model, MemoryMiB: g.MemoryMiB})
	}
	return row, row.Check()
}

// AnnouncementRow checks a signed job announcement, as the jobs topic
// carries it, and makes its row.
func AnnouncementRow(data []byte, seen time.Time) (indexdb.Announcement, error) {
	env, err := market.ParseEnvelope(data)
	if err != nil {
		return indexdb.Announcement{}, err
	}
	var a market.Announcement
	signer, err := env.Open(market.TypeAnnouncement, &a)
	if err != nil {
		return indexdb.Announcement{}, err
	}
	if err := market.CheckAnnouncement(a, signer, seen); err != nil {
		return indexdb.Announcement{}, fmt.Errorf("announcement: %w", err)
	}
	s := a.Spec
	row := indexdb.Announcement{
		JobID: a.JobID, Attempt: a.Attempt, Requester: a.Requester, Kind: s.Kind,
		CPU: s.Resources.CPU, MemoryMiB: int64(s.Resources.MemoryMiB), WallSeconds: s.Limits.WallSeconds,
		IssuedAt: a.IssuedAt.UTC(), SeenAt: seen.UTC(), Record: data,
	}
	if s.Resources.GPU != nil {
		row.GPUs = s.Resources.GPU.Count
	}
	if s.Price != nil {
		row.MaxPrice, row.Mint = s.MaxPrice(), s.Price.Mint
	}
	return row, row.Check()
}

// ReceiptRow checks a signed receipt, as the receipts topic carries it,
// and makes its row. fresh also refuses a stale receipt: a replay.
func ReceiptRow(data []byte, seen time.Time, fresh bool) (indexdb.Receipt, error) {
	sr, err := market.ParseSignedReceipt(data)
	if err != nil {
		return indexdb.Receipt{}, err
	}
	r, counter, err := sr.Open()
	if err != nil {
		return indexdb.Receipt{}, fmt.Errorf("receipt: %w", err)
	}
	if fresh {
		if err := r.CheckFresh(seen); err != nil {
			return indexdb.Receipt{}, err
		}
	} else if r.IssuedAt.After(seen.Add(market.MaxClockSkew)) {
		return indexdb.Receipt{}, errors.New("receipt is dated in the future")
	}
	canonical, err := sr.Marshal()
	if err != nil {
		return indexdb.Receipt{}, err
	}
	row := indexdb.Receipt{
		ID: sr.ID(), JobID: r.JobID, Attempt: r.Attempt, Requester: r.Requester, Provider: r.Provider, Kind: r.Kind,
		Outcome: r.Outcome, Fault: r.Fault, Reason: r.Reason, Price: r.Price, Mint: r.Mint,
		StartedAt: r.StartedAt.UTC(), EndedAt: r.EndedAt.UTC(), IssuedAt: r.IssuedAt.UTC(), SeenAt: seen.UTC(),
		Countersigned: counter, Record: canonical,
	}
	if e := r.Escrow; e != nil {
		row.EscrowState, row.EscrowTx = e.State, e.Tx
	}
	for _, o := range r.Outputs {
		row.Outputs = append(row.Outputs, o.CID)
	}
	return row, row.Check()
}

// ModelRow checks a signed model record and makes its row.
func ModelRow(data []byte, seen time.Time) (indexdb.Model, error) {
	env, err := market.ParseEnvelope(data)
	if err != nil {
		return indexdb.Model{}, err
	}
	var m market.ModelRecord
	signer, err := env.Open(market.TypeModel, &m)
	if err != nil {
		return indexdb.Model{}, err
	}
	if err := market.CheckModel(m, signer, seen); err != nil {
		return indexdb.Model{}, fmt.Errorf("model record: %w", err)
	}
	spec, err := json.Marshal(m.Spec)
	if err != nil {
		return indexdb.Model{}, fmt.Errorf("model record: %w", err)
	}
	canonical, err := env.Marshal()
	if err != nil {
		return indexdb.Model{}, err
	}
	row := indexdb.Model{
		ID: market.EnvelopeID(env), Publisher: m.Publisher, Name: m.Name, Description: m.Description, License: m.License,
		WeightsCID: m.WeightsCID, Spec: spec, Metrics: m.Metrics, JobID: m.JobID,
		PublishedAt: m.PublishedAt.UTC(), SeenAt: seen.UTC(), Record: canonical,
	}
	if m.Receipt != nil {
		row.ReceiptID = m.Receipt.ID()
	}
	return row, row.Check()
}
