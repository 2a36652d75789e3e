package edge

import (
	"net/http"

	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/storage"
)

// The sentinels of the psychology vertical's verdicts, from storage and
// actors, in the error table.
func init() {
	errorTable = append([]errorMapping{
		{storage.ErrConsentRequired, http.StatusUnprocessableEntity, CodeConsentRequired, "the client has no active consent for this booking"},
		{actors.ErrConsentRequired, http.StatusUnprocessableEntity, CodeConsentRequired, "the client has no active consent for this booking"},
		{storage.ErrProviderUnverified, http.StatusUnprocessableEntity, CodeProviderUnverified, "the provider's licence has not been verified by an operator yet"},
		{actors.ErrProviderUnverified, http.StatusUnprocessableEntity, CodeProviderUnverified, "the provider's licence has not been verified by an operator yet"},
		{storage.ErrErased, http.StatusGone, CodeErased, "the client's health data was erased"},
		{actors.ErrErased, http.StatusGone, CodeErased, "the client's health data was erased"},
		{actors.ErrForbidden, http.StatusForbidden, CodeForbidden, "only the treating provider may do this"},
	}, errorTable...)
}
