/* wsgi_push client: placeholder, replaced by the real client. */
