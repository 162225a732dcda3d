package s2s

import (
	"math/bits"
	"testing"
)

// TestFeatureTable checks what the negotiation core takes for granted of
// its entries: each has its own id (one bit, for epoch.listed) and its own
// feature name; an entry that takes elements names their namespace, and no
// two take the same one (dispatch gives an element to the first); a guard
// is bound by state bits, or it would see every element of every stream.
func TestFeatureTable(t *testing.T) {
	ids := map[featureID]string{}
	names := map[string]bool{}
	nss := map[string]string{}
	for _, f := range streamFeatures {
		n := f.name.Space + " " + f.name.Local
		if f.name.Local == "" || names[n] {
			t.Errorf("entry %q: empty or repeated feature name", n)
		}
		names[n] = true
		if bits.OnesCount32(uint32(f.id)) != 1 {
			t.Errorf("entry %q: id %b is not one bit", n, f.id)
		}
		if other, ok := ids[f.id]; ok {
			t.Errorf("entries %q and %q share id %b", n, other, f.id)
		}
		ids[f.id] = n
		if f.handle != nil {
			if f.ns == "" {
				t.Errorf("entry %q handles elements but names no namespace", n)
			}
			if other, ok := nss[f.ns]; ok {
				t.Errorf("entries %q and %q both handle %s", n, other, f.ns)
			}
			nss[f.ns] = n
		}
		if f.guard != nil && f.necessary == 0 && f.prohibited == 0 {
			t.Errorf("entry %q: a guard without state bits", n)
		}
		if f.list == nil && f.handle == nil && f.negotiate == nil {
			t.Errorf("entry %q does nothing", n)
		}
	}
}
