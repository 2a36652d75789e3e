// Package simulations is the home of BarberPro's failover simulations and of the
// tools they share with the demo and benchmarks: seed (demo providers), load (the
// booking load generator behind `barberpro bench`).
package simulations
