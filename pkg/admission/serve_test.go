package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// post sends body to a Server for h and decodes its answer.
func post(t *testing.T, h cradmission.Handler, contentType, body string) (admissionv1.AdmissionReview, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/admit", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	Serve(h).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP status %d", rec.Code)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer is not an AdmissionReview: %v\n%s", err, rec.Body)
	}
	if out.Response == nil {
		t.Fatalf("answer without a response: %s", rec.Body)
	}
	return out, rec.Body.String()
}

const podReview = `{"apiVersion":"%s","kind":"AdmissionReview","request":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002",
	"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
	"namespace":"alice","name":"nb-0","operation":"CREATE","userInfo":{"username":"alice@statcan.gc.ca","groups":["system:authenticated"],"extra":{"scopes":["a"]}},
	"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"nb-0","namespace":"alice"},"spec":{"containers":[{"name":"c","image":"x"}]}},
	"oldObject":null,"dryRun":false,"options":{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"}}}`

func TestServer_DecodesTheReviewAsTheStockCodecDoes(t *testing.T) {
	for _, version := range []string{"admission.k8s.io/v1", "admission.k8s.io/v1beta1"} {
		t.Run(version, func(t *testing.T) {
			body := strings.Replace(podReview, "%s", version, 1)
			var got, want cradmission.Request
			capture := func(dst *cradmission.Request) cradmission.Handler {
				return cradmission.HandlerFunc(func(_ context.Context, r cradmission.Request) cradmission.Response {
					*dst = r
					return cradmission.Denied("no")
				})
			}
			ours, _ := post(t, capture(&got), "application/json", body)

			// controller-runtime's own ServeHTTP, the reference.
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			(&cradmission.Webhook{Handler: capture(&want)}).ServeHTTP(rec, req)
			var stock admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &stock); err != nil {
				t.Fatal(err)
			}

			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("request differs from controller-runtime's (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(stock, ours); diff != "" {
				t.Errorf("answer differs from controller-runtime's (-want +got):\n%s", diff)
			}
			if ours.APIVersion != version || ours.Response.UID != "705ab4f5-6393-11e8-b7cc-42010a800002" || ours.Response.Allowed {
				t.Errorf("answer %+v", ours)
			}
		})
	}
}

func TestServer_BadRequestsGetAnErroredReview(t *testing.T) {
	allow := cradmission.HandlerFunc(func(context.Context, cradmission.Request) cradmission.Response { return cradmission.Allowed("") })
	for _, tc := range []struct {
		name, contentType, body, want string
		code                          int32
	}{
		{"empty body", "application/json", "", "request body is empty", 400},
		{"wrong content type", "text/plain", "{}", `content type "text/plain", want application/json`, 400},
		{"not JSON", "application/json", `{"apiVersion":`, "decoding the AdmissionReview", 400},
		{"wrong kind", "application/json", `{"apiVersion":"v1","kind":"Pod"}`, `apiVersion "v1" kind "Pod": want an AdmissionReview`, 400},
		{"no request", "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, "AdmissionReview without field request", 400},
		{"too large", "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"name":"` + strings.Repeat("x", maxReviewSize) + `"}}`, "request larger than", 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, raw := post(t, allow, tc.contentType, tc.body)
			if out.Response.Allowed || out.Response.Result == nil || out.Response.Result.Code != tc.code || !strings.Contains(out.Response.Result.Message, tc.want) {
				t.Errorf("answer %s, want code %d and %q", raw, tc.code, tc.want)
			}
		})
	}
}

func TestServer_RecoversPanicsAndCompletesPatches(t *testing.T) {
	body := strings.Replace(podReview, "%s", "admission.k8s.io/v1", 1)
	boom := cradmission.HandlerFunc(func(context.Context, cradmission.Request) cradmission.Response { panic("boom") })
	out, raw := post(t, boom, "application/json", body)
	if out.Response.Allowed || out.Response.Result.Code != 500 || !strings.Contains(out.Response.Result.Message, "boom") || out.Response.UID == "" {
		t.Errorf("answer %s", raw)
	}

	patch := cradmission.HandlerFunc(func(context.Context, cradmission.Request) cradmission.Response {
		return cradmission.Patched("", jsonpatch.NewOperation("add", "/metadata/labels", map[string]string{"a": "b"}))
	})
	out, raw = post(t, patch, "application/json", body)
	if !out.Response.Allowed || out.Response.PatchType == nil || !bytes.Contains(out.Response.Patch, []byte(`"/metadata/labels"`)) {
		t.Errorf("answer %s", raw)
	}
}

// Whatever the body, the answer is an AdmissionReview, never a panic.
func FuzzServer(f *testing.F) {
	f.Add([]byte(strings.Replace(podReview, "%s", "admission.k8s.io/v1", 1)))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"object":{"a":[1,{"b":null}]},"uid":7}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{},"request":{}}`))
	allow := cradmission.HandlerFunc(func(_ context.Context, r cradmission.Request) cradmission.Response {
		return cradmission.Allowed(string(r.UID))
	})
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		Serve(allow).ServeHTTP(rec, req)
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("answer is not an AdmissionReview with a response: %v\n%s", err, rec.Body)
		}
	})
}
