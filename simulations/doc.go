// Package simulations is the home of BarberPro's failover simulations and of the
// tools they share with the demo and benchmarks: seed (demo providers), load (the
// load generator behind `barberpro bench`: a city's people, closed-loop bookings and
// availability reads).
package simulations
