"""``schakel console``: the partner's own client as a local web application on 127.0.0.1
(ADR 0040).  The keys and the plaintext stay in the console's process; the browser talks
only to it, and it talks to the Schakel server as every other command does."""
