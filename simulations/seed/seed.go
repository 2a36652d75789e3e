// Package seed makes demo data: providers of every vertical in every Argentine city,
// with realistic services, prices and weekly hours, created through the HTTP API like
// any client would.
package seed

import (
	"context"
	"fmt"

	"github.com/barberpro/edge/edge/client"
)

// Cities names the Argentine cities the demo seeds.
var Cities = []string{"buenos-aires", "cordoba", "rosario", "la-plata"}

type profile struct {
	vertical string
	names    []string // one per city, in Cities order
	services []client.Service
	hours    map[string][]client.HoursRange
	licensed bool // a licence per provider (verticals whose policy requires one)
}

func hours(days []string, ranges ...client.HoursRange) map[string][]client.HoursRange {
	m := map[string][]client.HoursRange{}
	for _, d := range days {
		m[d] = ranges
	}
	return m
}

var (
	weekdays = []string{"monday", "tuesday", "wednesday", "thursday", "friday"}
	workweek = []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}
	allWeek  = []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
)

func ars(amount string) client.Money { return client.Money{Amount: amount, Currency: "ARS"} }

var profiles = []profile{
	{
		vertical: "barber",
		names:    []string{"Barbería El Porteño", "Barbería La Cañada", "Barbería del Río", "Barbería Diagonal"},
		services: []client.Service{
			{Name: "Corte de pelo", DurationMinutes: 30, BufferMinutes: 10, Price: ars("12000.00")},
			{Name: "Corte y barba", DurationMinutes: 45, BufferMinutes: 15, Price: ars("18500.00")},
		},
		hours: hours(workweek, client.HoursRange{Start: "09:00", End: "13:00"}, client.HoursRange{Start: "16:00", End: "20:00"}),
	},
	{
		vertical: "beauty",
		names:    []string{"Estética Palermo", "Estética Nueva Córdoba", "Estética Fisherton", "Estética Plaza Moreno"},
		services: []client.Service{
			{Name: "Manicura", DurationMinutes: 45, Price: ars("15000.00")},
			{Name: "Coloración", DurationMinutes: 120, BufferMinutes: 15, Price: ars("48000.00")},
		},
		hours: hours(workweek, client.HoursRange{Start: "10:00", End: "19:00"}),
	},
	{
		vertical: "fitness",
		names:    []string{"Entrenador Recoleta", "Entrenadora Güemes", "Entrenador Pichincha", "Entrenadora Bosque"},
		services: []client.Service{
			{Name: "Clase personal", DurationMinutes: 60, Price: ars("20000.00")},
		},
		hours: hours(allWeek, client.HoursRange{Start: "07:00", End: "11:00"}, client.HoursRange{Start: "18:00", End: "22:00"}),
	},
	{
		vertical: "psychology",
		names:    []string{"Lic. Martínez (psicología)", "Lic. Ferreyra (psicología)", "Lic. Gómez (psicología)", "Lic. Sosa (psicología)"},
		services: []client.Service{
			{Name: "Sesión individual", DurationMinutes: 50, BufferMinutes: 10, Price: ars("35000.00")},
		},
		hours:    hours(weekdays, client.HoursRange{Start: "09:00", End: "13:00"}, client.HoursRange{Start: "15:00", End: "19:00"}),
		licensed: true,
	},
}

// DemoProviders returns one provider of each vertical in each Argentine city.
func DemoProviders() []client.Provider {
	var out []client.Provider
	for _, p := range profiles {
		for i, city := range Cities {
			prov := client.Provider{
				Name:        p.names[i],
				Vertical:    p.vertical,
				City:        city,
				Services:    p.services,
				WeeklyHours: p.hours,
			}
			if p.licensed {
				prov.License = &client.License{Number: fmt.Sprintf("MN %d", 41000+i*137), Issuer: "Colegio de Psicólogos de " + cityNames[i]}
			}
			out = append(out, prov)
		}
	}
	return out
}

// cityNames are Cities as people write them.
var cityNames = []string{"Buenos Aires", "Córdoba", "Rosario", "La Plata"}

// Create creates every provider through c (an operator), each with an
// Idempotency-Key derived from its position so a re-run of the same seed makes no
// duplicates on the same store, and verifies each licensed one, so that it takes
// bookings.
func Create(ctx context.Context, c *client.Client, providers []client.Provider) ([]client.Provider, error) {
	out := make([]client.Provider, 0, len(providers))
	for i, p := range providers {
		got, err := c.CreateProvider(ctx, p, fmt.Sprintf("seed-%d-%s-%s", i, p.Vertical, p.City))
		if err != nil {
			return out, fmt.Errorf("seed: provider %q: %w", p.Name, err)
		}
		if p.License != nil {
			if _, err := c.VerifyProvider(ctx, got.ID); err != nil {
				return out, fmt.Errorf("seed: verify provider %q: %w", p.Name, err)
			}
			got.Verified = true
		}
		out = append(out, *got)
	}
	return out, nil
}
