package resolver

import (
	"cmp"
	"slices"
)

// order sorts records by priority and, within each priority, into the
// weighted random order of RFC 2782. The xmpps and xmpp records are one pool
// here, as XEP-0368 asks, so a direct TLS target and a STARTTLS target of the
// same priority share the load by weight.
func (r *DNS) order(records []srvRecord) []srvRecord {
	recs := slices.Clone(records)
	slices.SortStableFunc(recs, func(a, b srvRecord) int { return cmp.Compare(a.priority, b.priority) })
	r.randMu.Lock()
	defer r.randMu.Unlock()
	for start := 0; start < len(recs); {
		end := start + 1
		for end < len(recs) && recs[end].priority == recs[start].priority {
			end++
		}
		weightedShuffle(recs[start:end], r.s.randN)
		start = end
	}
	return recs
}

// weightedShuffle orders recs in place the way RFC 2782 describes: records
// of weight 0 first, then repeatedly pick a number in [0, sum of weights]
// and take the first record whose running sum reaches it. Records of weight
// 0 keep the small chance the RFC gives them of being picked first.
func weightedShuffle(recs []srvRecord, randN func(int) int) {
	slices.SortStableFunc(recs, func(a, b srvRecord) int {
		return cmp.Compare(min(a.weight, 1), min(b.weight, 1))
	})
	for i := range recs {
		rest := recs[i:]
		sum := 0
		for _, rec := range rest {
			sum += int(rec.weight)
		}
		pick := randN(sum + 1)
		running := 0
		for j, rec := range rest {
			running += int(rec.weight)
			if running >= pick {
				rest[0], rest[j] = rest[j], rest[0]
				break
			}
		}
		// Keep the unpicked records with weight 0 at the front, as the
		// next round expects.
		slices.SortStableFunc(rest[1:], func(a, b srvRecord) int {
			return cmp.Compare(min(a.weight, 1), min(b.weight, 1))
		})
	}
}
