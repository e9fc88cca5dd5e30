package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/rpc"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/cyxwiz/cyxwiz/trainspec"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ModelsFile keeps the model records this node published, so that it
// publishes them again after a restart.
const ModelsFile = "models.json"

// Pacing of the model registry.
const (
	// republishModels is how often the node publishes its model records
	// again, so that indexers that were away see them.
	republishModels = 10 * time.Minute
	// maxOwnModels bounds the records one node keeps publishing.
	maxOwnModels = 1000
)

// modelRegistry is the node's part in the model registry: the models
// topic's validator (on every node, so that only valid records travel),
// the records this node signed, kept in REPO/models.json, and their
// republication.
type modelRegistry struct {
	repo *Repo
	host *p2p.Host
	key  crypto.PrivKey
	jobs *jobs.Engine
	log  *slog.Logger

	mu    sync.Mutex
	own   []market.Envelope
	topic *pubsub.Topic

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start loads this node's records, registers the validator, joins the
// topic and starts the republisher.
func (m *modelRegistry) Start(context.Context) error {
	data, err := os.ReadFile(m.repo.Path(ModelsFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read %s: %w", ModelsFile, err)
	default:
		if err := json.Unmarshal(data, &m.own); err != nil {
			return fmt.Errorf("read %s: %w", ModelsFile, err)
		}
	}
	if err := m.host.PubSub.RegisterTopicValidator(wire.ModelsTopic, validateModel); err != nil {
		return fmt.Errorf("models topic validator: %w", err)
	}
	t, err := m.host.Topic(wire.ModelsTopic)
	if err != nil {
		m.host.PubSub.UnregisterTopicValidator(wire.ModelsTopic)
		return err
	}
	m.topic = t
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.wg.Add(1)
	go m.republish()
	return nil
}

// Close stops the republisher.
func (m *modelRegistry) Close() error {
	if m.cancel != nil {
		m.cancel()
		m.wg.Wait()
	}
	m.host.PubSub.UnregisterTopicValidator(wire.ModelsTopic)
	return nil
}

// validateModel is the models topic's validator.
func validateModel(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	env, err := market.ParseEnvelope(msg.Data)
	if err != nil {
		return pubsub.ValidationReject
	}
	var rec market.ModelRecord
	signer, err := env.Open(market.TypeModel, &rec)
	if err != nil || market.CheckModel(rec, signer, time.Now()) != nil {
		return pubsub.ValidationReject
	}
	return pubsub.ValidationAccept
}

func (m *modelRegistry) republish() {
	defer m.wg.Done()
	tick := time.NewTicker(republishModels)
	defer tick.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-tick.C:
		}
		m.mu.Lock()
		own := append([]market.Envelope(nil), m.own...)
		m.mu.Unlock()
		for _, env := range own {
			if m.ctx.Err() != nil {
				return
			}
			m.send(env)
		}
	}
}

func (m *modelRegistry) send(env market.Envelope) error {
	data, err := env.Marshal()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	defer cancel()
	return m.topic.Publish(ctx, data)
}

func (m *modelRegistry) register(srv *rpc.Server) {
	srv.Register(api.MethodModelPublish, rpc.Method(m.publish))
	srv.Register(api.MethodModelList, rpc.NoParams(m.list))
}

// publish signs a model record, keeps it and publishes it.
func (m *modelRegistry) publish(_ context.Context, p api.ModelPublishParams) (api.ModelInfo, error) {
	rec := market.ModelRecord{Publisher: m.host.ID().String(), Name: p.Name, Description: p.Description, License: p.License,
		WeightsCID: p.CID, Metrics: p.Metrics, PublishedAt: time.Now().UTC()}
	if p.Job != "" {
		if err := m.fromJob(&rec, p.Job); err != nil {
			return api.ModelInfo{}, err
		}
	} else {
		if p.CID == "" || len(p.Spec) == 0 {
			return api.ModelInfo{}, api.Errorf(api.CodeInvalidParams, "invalid params: give job, or both cid and spec")
		}
		spec, err := trainSection(p.Spec)
		if err != nil {
			return api.ModelInfo{}, api.Errorf(api.CodeInvalidParams, "invalid params: spec: %v", err)
		}
		rec.Spec = spec
	}
	if err := market.CheckModel(rec, m.host.ID(), time.Now()); err != nil {
		return api.ModelInfo{}, api.Errorf(api.CodeInvalidParams, "invalid model record: %v", err)
	}
	env, err := market.Seal(m.key, market.TypeModel, rec)
	if err != nil {
		return api.ModelInfo{}, err
	}
	if err := m.keep(env); err != nil {
		return api.ModelInfo{}, err
	}
	if err := m.send(env); err != nil {
		m.log.Warn("publish model record", "name", rec.Name, "error", err)
	}
	return modelInfo(env, rec), nil
}

// fromJob fills a record from a train job this node requested.
func (m *modelRegistry) fromJob(rec *market.ModelRecord, id string) error {
	j, err := m.jobs.Get(id)
	if errors.Is(err, jobs.ErrNotFound) {
		return api.Errorf(api.CodeNotFound, "no job %s", id)
	}
	if err != nil {
		return err
	}
	switch {
	case j.Spec.Kind != market.KindTrain || j.Spec.Train == nil:
		return api.Errorf(api.CodeInvalidParams, "job %s is a %s job: only a train job makes a model", id, j.Spec.Kind)
	case j.State != market.StateSucceeded || j.Result == nil || j.Result.ModelCID == "":
		return api.Errorf(api.CodeFailed, "job %s is %s: it has no trained weights yet", id, j.State)
	case rec.WeightsCID != "" && rec.WeightsCID != j.Result.ModelCID:
		return api.Errorf(api.CodeInvalidParams, "cid %s is not the weights of job %s (%s)", rec.WeightsCID, id, j.Result.ModelCID)
	}
	rec.WeightsCID, rec.Spec, rec.JobID = j.Result.ModelCID, *j.Spec.Train, j.ID
	if rec.Metrics == nil {
		rec.Metrics = j.Result.Metrics
	}
	for _, o := range j.Outcomes {
		if o.Outcome == market.OutcomeSucceeded && o.Attempt == j.Result.Attempt && o.Receipt != nil {
			rec.Receipt = o.Receipt
		}
	}
	return nil
}

// keep adds a record to REPO/models.json, a record of the same name
// replacing the older one.
func (m *modelRegistry) keep(env market.Envelope) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var rec market.ModelRecord
	if _, err := env.Open(market.TypeModel, &rec); err != nil {
		return err
	}
	own := make([]market.Envelope, 0, len(m.own)+1)
	for _, e := range m.own {
		var r market.ModelRecord
		if _, err := e.Open(market.TypeModel, &r); err == nil && r.Name == rec.Name {
			continue
		}
		own = append(own, e)
	}
	if len(own) >= maxOwnModels {
		return api.Errorf(api.CodeFailed, "this node already publishes %d models, the most it keeps", maxOwnModels)
	}
	own = append(own, env)
	data, err := json.Marshal(own)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(m.repo.Path(ModelsFile), data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", ModelsFile, err)
	}
	m.own = own
	return nil
}

// list returns the records this node publishes.
func (m *modelRegistry) list(context.Context) ([]api.ModelInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []api.ModelInfo{}
	for _, env := range m.own {
		var rec market.ModelRecord
		if _, err := env.Open(market.TypeModel, &rec); err == nil {
			out = append(out, modelInfo(env, rec))
		}
	}
	return out, nil
}

func modelInfo(env market.Envelope, rec market.ModelRecord) api.ModelInfo {
	info := api.ModelInfo{ID: market.EnvelopeID(env), Name: rec.Name, WeightsCID: rec.WeightsCID, Job: rec.JobID,
		Metrics: rec.Metrics, PublishedAt: rec.PublishedAt}
	if rec.Receipt != nil {
		info.Receipt = rec.Receipt.ID()
	}
	info.Record, _ = env.Marshal()
	return info
}

// trainSection reads a train spec: a whole train job spec, or its train
// section alone.
func trainSection(raw json.RawMessage) (trainspec.Spec, error) {
	if s, err := market.ParseSpec(raw); err == nil && s.Train != nil {
		return *s.Train, nil
	}
	var t trainspec.Spec
	if err := json.Unmarshal(raw, &t); err != nil {
		return trainspec.Spec{}, err
	}
	t.Normalize()
	return t, nil
}
