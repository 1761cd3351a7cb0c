package descope

import (
	"context"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// batcher gathers the creates that run at the same time into batches: a batch is
// sent when it holds size users, or wait after its first one arrived, and once the
// create budget allows a request. The engine calls Apply once per identity from its
// workers; each caller waits for its own result.
type batcher struct {
	size int
	wait time.Duration
	// send makes the request for a batch and returns one result per item, in order.
	send func(ctx context.Context, items []*batchItem) []batchResult
	// budget is the create budget, which every batch request waits on. A batch due
	// while the budget is spent stays open until it refills, gathering the creates
	// that arrive meanwhile: when creates come in a trickle (the workers busy with
	// adoptions, say), sending each alone would spend a create request per user.
	budget *rate.Limiter

	mu      gosync.Mutex
	pending *pendingBatch
	// inflight counts the batches sent and not yet answered. A batch that is due
	// waits for them, so that one whose request is still waiting for the budget does
	// not let the next one go out with a user or two: the budget's tokens are only
	// taken when a request starts.
	inflight int
}

type pendingBatch struct {
	items []*batchItem
	keys  map[string]bool // lowercased loginIds: one of each per batch
	timer *time.Timer
	sent  bool
	due   bool // its wait is over; it goes out when the budget and inflight allow
}

// batchItem is one caller's create.
type batchItem struct {
	ctx  context.Context
	body createBody
	res  chan batchResult // buffered: send never blocks
}

type resultKind uint8

const (
	// resCreated: the answer lists the user among createdUsers.
	resCreated resultKind = iota + 1
	// resFailed: the answer lists the user among failedUsers, with failure.
	resFailed
	// resAlone: no batch request made the user, certainly (the batch was refused
	// whole with a 4xx): create it alone.
	resAlone
	// resUnsure: the batch failed in a way that leaves unknown whether it made the
	// user (a 5xx, a network error, an answer that does not name it).
	resUnsure
	// resError: err is the caller's answer (credentials refused, throttled, every
	// caller gone).
	resError
)

type batchResult struct {
	kind    resultKind
	user    user
	failure string
	err     error
}

// submit adds it to the batch being gathered and waits for its result, or for ctx to
// end. A caller that leaves before its batch is sent is taken out of it.
func (b *batcher) submit(ctx context.Context, it *batchItem) (batchResult, error) {
	key := strings.ToLower(it.body.LoginID)
	b.mu.Lock()
	if b.pending != nil && b.pending.keys[key] {
		b.flushLocked() // results are matched by loginId: never two of one in a batch
	}
	if b.pending == nil {
		p := &pendingBatch{keys: map[string]bool{}}
		p.timer = time.AfterFunc(b.wait, func() { b.due(p) })
		b.pending = p
	}
	p := b.pending
	p.items = append(p.items, it)
	p.keys[key] = true
	if len(p.items) >= b.size {
		b.flushLocked()
	}
	b.mu.Unlock()

	select {
	case r := <-it.res:
		return r, nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	if !p.sent {
		p.items = slices.DeleteFunc(p.items, func(x *batchItem) bool { return x == it })
		delete(p.keys, key)
		if len(p.items) == 0 {
			p.timer.Stop()
			b.pending = nil
		}
	}
	b.mu.Unlock()
	select {
	case r := <-it.res: // it came as ctx ended
		return r, nil
	default:
	}
	return batchResult{}, ctx.Err()
}

// due sends p when its wait is over, unless the create budget is spent or another
// batch is still on its way: then p stays open, gathering, until the budget has a
// request to give and the batch before it is answered.
func (b *batcher) due(p *pendingBatch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending != p {
		return
	}
	p.due = true
	b.sendDueLocked()
}

// sendDueLocked sends the pending batch if it is due, no batch is in flight and the
// budget has a request to give; when only the budget is short, it looks again when it
// will not be. b.mu is held.
func (b *batcher) sendDueLocked() {
	p := b.pending
	if p == nil || !p.due || b.inflight > 0 {
		return // run looks again when the batch in flight is answered
	}
	if d := untilToken(b.budget); d > 0 {
		p.timer.Reset(d)
		return
	}
	b.flushLocked()
}

// untilToken is how long until l has a whole token; 0 for no limiter.
func untilToken(l *rate.Limiter) time.Duration {
	if l == nil || l.Limit() == rate.Inf || l.Limit() <= 0 {
		return 0
	}
	missing := 1 - l.Tokens()
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / float64(l.Limit()) * float64(time.Second))
}

// flushLocked sends the pending batch. b.mu is held.
func (b *batcher) flushLocked() {
	p := b.pending
	b.pending = nil
	p.timer.Stop()
	p.sent = true
	b.inflight++
	go b.run(p.items)
}

// run sends one batch under a context that ends when every caller has left, and
// hands each caller its result.
func (b *batcher) run(items []*batchItem) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(items[0].ctx))
	defer cancel()
	var left atomic.Int64
	left.Store(int64(len(items)))
	stops := make([]func() bool, len(items))
	for i, it := range items {
		stops[i] = context.AfterFunc(it.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	res := b.send(ctx, items)
	b.mu.Lock()
	b.inflight--
	b.sendDueLocked()
	b.mu.Unlock()
	for i, it := range items {
		stops[i]()
		it.res <- res[i]
	}
}
