package traffic

import (
	"context"
	"fmt"
	"time"

	"github.com/barberpro/edge/edge/client"
)

// Provider is a provider the workload books, with what the clients need to know
// about it.
type Provider struct {
	ID, ServiceID, Vertical, City, Jurisdiction string
	// Duration and Buffer of the service the workload books.
	Duration, Buffer time.Duration
	// Window is the first of the contended starts (15 minutes apart).
	Window time.Time
	// Probe is the first of the starts liveness probes book (an hour apart),
	// away from the window.
	Probe time.Time
	// Loc is the provider's time zone.
	Loc *time.Location
}

// Slot is the k-th start of the contended window.
func (p Provider) Slot(k int) time.Time { return p.Window.Add(time.Duration(k) * 15 * time.Minute) }

// Blocked is the interval a booking starting at start blocks (buffer included).
func (p Provider) Blocked(start time.Time) (time.Time, time.Time) {
	return start, start.Add(p.Duration + p.Buffer)
}

// hotSpecs are the (city, vertical) pairs the hot providers cycle through.
var hotCities = []string{"buenos-aires", "cordoba", "rosario", "la-plata"}

// open24 is a provider open around the clock, without minimum notice, with a
// 30-minute service and a 15-minute buffer: bookings of neighbouring starts on
// the 15-minute grid overlap, so clients contend.
func open24(name, vertical, city, currency string, minutes, buffer int, horizon int) client.Provider {
	all := []client.HoursRange{{Start: "00:00", End: "24:00"}}
	zero := 0
	return client.Provider{
		Name: name, Vertical: vertical, City: city,
		Services: []client.Service{{Name: "Turno", DurationMinutes: minutes, BufferMinutes: buffer,
			Price: client.Money{Amount: "1000.00", Currency: currency}}},
		WeeklyHours: map[string][]client.HoursRange{
			"monday": all, "tuesday": all, "wednesday": all, "thursday": all,
			"friday": all, "saturday": all, "sunday": all,
		},
		MinNoticeMinutes: &zero,
		HorizonDays:      &horizon,
	}
}

// HotSpecs are the providers a workload of n hot providers creates: cycling
// through the Argentine cities and verticals, plus one us-east barber when us is
// set (replacing the last).
func HotSpecs(n int, verticals []string, us bool) []client.Provider {
	var out []client.Provider
	for i := range n {
		v := verticals[i%len(verticals)]
		city := hotCities[i%len(hotCities)]
		spec := open24(fmt.Sprintf("Sim hot %d (%s)", i, v), v, city, "ARS", 30, 15, 30)
		if v == "psychology" {
			spec.License = &client.License{Number: fmt.Sprintf("MN-SIM-%d", i), Issuer: "Colegio de Psicólogos (simulación)"}
		}
		out = append(out, spec)
	}
	if us && n > 1 {
		out[n-1] = open24(fmt.Sprintf("Sim hot %d (us)", n-1), "barber", "us-east", "USD", 30, 15, 30)
	}
	return out
}

// PreloadSpec is the background provider preloads book: 15-minute service, no
// buffer, a year of horizon.
func PreloadSpec() client.Provider {
	return open24("Sim preload", "barber", "buenos-aires", "ARS", 15, 0, 365)
}

// Create creates specs through c (retrying unavailability for up to a minute)
// and returns them as workload providers with their windows: day+2 local
// midnight, probes from day+4.
func Create(ctx context.Context, c *client.Client, specs []client.Provider, now time.Time) ([]Provider, error) {
	var out []Provider
	for i, s := range specs {
		var p *client.Provider
		var err error
		deadline := time.Now().Add(time.Minute)
		for {
			p, err = c.CreateProvider(ctx, s, fmt.Sprintf("sim-provider-%d-%d", now.UnixNano(), i))
			if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			if pr, ok := err.(*client.Problem); ok && pr.Status < 500 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			return nil, fmt.Errorf("traffic: create provider %q: %w", s.Name, err)
		}
		if s.License != nil {
			// A licensed provider takes bookings once an operator verified it.
			if err := verify(ctx, c, p.ID); err != nil {
				return nil, fmt.Errorf("traffic: verify provider %q: %w", s.Name, err)
			}
		}
		loc, err := time.LoadLocation(p.Timezone)
		if err != nil {
			return nil, fmt.Errorf("traffic: provider zone %q: %w", p.Timezone, err)
		}
		l := now.In(loc)
		day := time.Date(l.Year(), l.Month(), l.Day()+2, 8, 0, 0, 0, loc)
		out = append(out, Provider{
			ID: p.ID, ServiceID: p.Services[0].ID, Vertical: p.Vertical, City: p.City, Jurisdiction: p.Jurisdiction,
			Duration: time.Duration(s.Services[0].DurationMinutes) * time.Minute,
			Buffer:   time.Duration(s.Services[0].BufferMinutes) * time.Minute,
			Window:   day, Probe: time.Date(l.Year(), l.Month(), l.Day()+4, 0, 0, 0, 0, loc), Loc: loc,
		})
	}
	return out, nil
}

// verify verifies provider id through c (an operator), retrying unavailability
// for up to a minute.
func verify(ctx context.Context, c *client.Client, id string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := c.VerifyProvider(ctx, id)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		if pr, ok := err.(*client.Problem); ok && pr.Status < 500 {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
