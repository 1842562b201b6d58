// Package verdict answers "what do we know about this image?" on the
// admission path: an in-memory index of the cluster's ImageScans, kept
// current by an informer, looked up without a network call or a lock.
// It does not import Trivy.
package verdict

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/images"
)

// Verdict is what the cluster knows about one image digest. It is shared
// and must not be modified.
type Verdict struct {
	// Name of the ImageScan it comes from.
	Name       string
	Digest     string
	Repository string
	// Scanned is false until a scan has succeeded (Error then says why
	// the last one failed).
	Scanned   bool
	Source    string
	ScannedAt time.Time
	// DBUpdatedAt is the vulnerability database's build time (zero for
	// verdicts ingested from other scanners).
	DBUpdatedAt     time.Time
	Vulnerabilities v1alpha1.SeverityCounts
	Fixable         v1alpha1.SeverityCounts
	// FixableCriticalHigh lists fixable critical and high vulnerabilities
	// (critical first); FixableNotListed more were not listed.
	FixableCriticalHigh []v1alpha1.FixableVulnerability
	FixableNotListed    int32
	Error               string
	tags                []string
}

// FromImageScan builds the verdict an ImageScan holds.
func FromImageScan(is *v1alpha1.ImageScan) *Verdict {
	st := &is.Status
	v := &Verdict{
		Name: is.Name, Digest: is.Spec.Digest, Repository: is.Spec.Repository,
		Scanned: st.Scanned(), Source: st.Source,
		Vulnerabilities: st.Vulnerabilities, Fixable: st.Fixable,
		FixableCriticalHigh: st.FixableCriticalHigh, FixableNotListed: st.FixableNotListed,
		Error: st.Error, tags: normalTags(st.Tags),
	}
	if st.ScannedAt != nil {
		v.ScannedAt = st.ScannedAt.Time
	}
	if st.DB != nil {
		v.DBUpdatedAt = st.DB.UpdatedAt.Time
	}
	return v
}

// normalTags writes tags the way lookups spell them (registry and
// repository in full), so "team/etl:1" and "docker.io/team/etl:1" meet.
// The scanner writes them normalised already; ingested reports may not.
func normalTags(tags []string) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if r, err := images.Parse(t); err == nil && r.Tag != "" {
			t = r.TagName()
		}
		out = append(out, t)
	}
	return out
}

// Index maps image digests and tags to verdicts. Lookups are lock-free
// (sync.Map, read-mostly); the informer's events write.
type Index struct {
	byDigest sync.Map // "sha256:..." -> *Verdict
	byTag    sync.Map // "registry/repository:tag" -> "sha256:..."
	synced   atomic.Pointer[func() bool]
	// keys memoises image strings as pod specs write them to their lookup
	// key (a digest, or a normalised tag): parsing a reference costs
	// microseconds and 10-30 allocations, and pods repeat the same few
	// images. Bounded by maxKeys; past it, lookups parse every time.
	keys  sync.Map // image -> lookupKey
	nkeys atomic.Int64
	// unscanned counts the verdicts held that are not Scanned, kept as
	// they change so that the admission path need not walk the index.
	unscanned atomic.Int64
}

// maxKeys bounds the memo of parsed image strings (~200 bytes each).
const maxKeys = 1 << 16

type lookupKey struct {
	digest, tag string
}

// New returns an empty index; Attach keeps it in step with the cluster.
func New() *Index { return &Index{} }

// Set records or replaces the verdict of an ImageScan.
func (ix *Index) Set(is *v1alpha1.ImageScan) {
	v := FromImageScan(is)
	if v.Digest == "" {
		return
	}
	if !v.Scanned {
		ix.unscanned.Add(1)
	}
	var oldTags []string
	if prev, ok := ix.byDigest.Swap(v.Digest, v); ok {
		oldTags = prev.(*Verdict).tags
		if !prev.(*Verdict).Scanned {
			ix.unscanned.Add(-1)
		}
	}
	for _, t := range v.tags {
		ix.byTag.Store(t, v.Digest)
	}
	for _, t := range oldTags {
		if !slices.Contains(v.tags, t) {
			ix.byTag.CompareAndDelete(t, v.Digest) // unless another digest took it meanwhile
		}
	}
}

// Delete forgets an ImageScan.
func (ix *Index) Delete(is *v1alpha1.ImageScan) {
	prev, ok := ix.byDigest.LoadAndDelete(is.Spec.Digest)
	if !ok {
		return
	}
	if !prev.(*Verdict).Scanned {
		ix.unscanned.Add(-1)
	}
	for _, t := range prev.(*Verdict).tags {
		ix.byTag.CompareAndDelete(t, is.Spec.Digest)
	}
}

// Lookup returns the verdict for image as a pod spec names it: by digest
// when it has one, otherwise by the digest the scanner last resolved its
// tag to. An unparsable reference is an error; an unknown image is
// (nil, nil): unscanned.
func (ix *Index) Lookup(image string) (*Verdict, error) {
	if k, ok := ix.keys.Load(image); ok {
		return ix.lookup(k.(lookupKey)), nil
	}
	ref, err := images.Parse(image)
	if err != nil {
		return nil, err
	}
	k := lookupKey{digest: ref.Digest}
	if k.digest == "" {
		k.tag = ref.TagName()
	}
	if ix.nkeys.Load() < maxKeys {
		if _, loaded := ix.keys.LoadOrStore(image, k); !loaded {
			ix.nkeys.Add(1)
		}
	}
	return ix.lookup(k), nil
}

func (ix *Index) lookup(k lookupKey) *Verdict {
	digest := k.digest
	if digest == "" {
		d, ok := ix.byTag.Load(k.tag)
		if !ok {
			return nil
		}
		digest = d.(string)
	}
	v, ok := ix.byDigest.Load(digest)
	if !ok {
		return nil
	}
	return v.(*Verdict)
}

// LookupRef is Lookup for a parsed reference.
func (ix *Index) LookupRef(ref images.Ref) *Verdict {
	if ref.Digest != "" {
		return ix.lookup(lookupKey{digest: ref.Digest})
	}
	return ix.lookup(lookupKey{tag: ref.TagName()})
}

// Len counts the verdicts held.
func (ix *Index) Len() int {
	n := 0
	ix.byDigest.Range(func(any, any) bool { n++; return true })
	return n
}

// Unscanned counts the ImageScans held without a successful scan: stubs
// waiting for the scanner, and images whose scan failed.
func (ix *Index) Unscanned() int {
	return int(ix.unscanned.Load())
}

// HasSynced reports whether the index holds every ImageScan that existed
// when it was attached.
func (ix *Index) HasSynced() bool {
	f := ix.synced.Load()
	return f != nil && (*f)()
}

// Attach feeds the index from the ImageScan informer of a
// controller-runtime cache (a manager's, in the webhook).
func (ix *Index) Attach(ctx context.Context, informers cache.Informers) error {
	inf, err := informers.GetInformer(ctx, &v1alpha1.ImageScan{})
	if err != nil {
		return fmt.Errorf("ImageScan informer: %w", err)
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if is, ok := obj.(*v1alpha1.ImageScan); ok {
				ix.Set(is)
			}
		},
		UpdateFunc: func(_, obj any) {
			if is, ok := obj.(*v1alpha1.ImageScan); ok {
				ix.Set(is)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if is, ok := obj.(*v1alpha1.ImageScan); ok {
				ix.Delete(is)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("ImageScan informer: %w", err)
	}
	synced := reg.HasSynced
	ix.synced.Store(&synced)
	return nil
}
