package edge

import (
	"context"
	"slices"
	"sync"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// maxCachedProviders bounds providerCache; past it, an arbitrary entry makes
// room (a miss costs one local read, as without the cache).
const maxCachedProviders = 1 << 16

// providerCache keeps providers as this node's replica last answered them, for
// the questions whose answers never change once a provider exists: its id,
// city, jurisdiction, time zone and vertical (no write changes them: the FSM's
// update keeps them from the stored record) and whether it offers a service
// (services are only added: an id not found is read again). Anything else —
// hours, the licence's verification — is read from the store. Saving a
// booking the local read and decoding of its provider is what it is for.
// Safe for concurrent use; the providers it hands out are shared and must not
// be modified.
type providerCache struct {
	mu sync.RWMutex
	m  map[string]*bookingv1.Provider
}

func (c *providerCache) get(id string) *bookingv1.Provider {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[id]
}

func (c *providerCache) put(p *bookingv1.Provider) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*bookingv1.Provider{}
	}
	if _, ok := c.m[p.GetId()]; !ok && len(c.m) >= maxCachedProviders {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[p.GetId()] = p
}

// offers reports whether p has a service with id serviceID.
func offers(p *bookingv1.Provider, serviceID string) bool {
	return slices.ContainsFunc(p.GetServices(), func(sv *bookingv1.Service) bool { return sv.GetId() == serviceID })
}

// providerFacts returns provider id for its immutable facts (providerCache):
// from the cache, else read (readProvider, errors included) and cached. With
// serviceID set, a cached provider that does not offer it is read again (the
// service may have been added since).
func (s *Server) providerFacts(ctx context.Context, id, serviceID string) (*bookingv1.Provider, error) {
	if p := s.providers.get(id); p != nil && (serviceID == "" || offers(p, serviceID)) {
		return p, nil
	}
	p, err := s.readProvider(ctx, id)
	if err != nil {
		return nil, err
	}
	s.providers.put(p)
	return p, nil
}
