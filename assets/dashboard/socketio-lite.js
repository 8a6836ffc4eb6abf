// minimal socket.io client
