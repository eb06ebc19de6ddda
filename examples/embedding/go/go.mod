module regcompat.example/embedding

go 1.22
