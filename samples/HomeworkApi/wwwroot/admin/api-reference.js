// Configuration module of the API reference page (/admin/api-reference, Scalar): the OpenAPI document
// needs an admin's bearer token, so it is fetched here with the token the portal keeps for this tab
// (sign in on /admin first) and handed to Scalar as content; "Try it" requests carry the same token.
const token = sessionStorage.getItem('homework-admin-token');
let document_ = { openapi: '3.1.1', info: { title: 'Sign in on /admin first', version: 'v1', description: 'The API document is for admins: [sign in on the portal](/admin), then come back.' }, paths: {} };
if (token) {
  const response = await fetch('/openapi/v1.json', { headers: { Authorization: 'Bearer ' + token } });
  if (response.ok) {
    document_ = await response.json();
  } else {
    document_.info.description = `The API document answered ${response.status}: [sign in on the portal](/admin) as an admin, then come back.`;
  }
}

export default {
  sources: [{ title: 'v1', slug: 'v1', content: document_ }],
  authentication: token ? { preferredSecurityScheme: 'Bearer', securitySchemes: { Bearer: { token } } } : undefined,
};
