"""SIP side: pjsua2 endpoint, account and the one call of this process."""
