// Database and API clients (fake secrets).
const { MongoClient } = require("mongodb");
const mysql = require("mysql2");

const mongo = new MongoClient("mongodb+srv://admin:3I3F1RDYAhU4oDcD@cluster0.ab1cd.mongodb.net/shop?retryWrites=true");
const pool = mysql.createPool("mysql://root:Mywhcv6nFQVLJh!@localhost:3306/shop");

async function fetchOrders() {
  const res = await fetch("https://api.example.com/orders", {
    headers: { Authorization: "Bearer HDUeNnwGudobI1Q3M3c48_3c444h7WNHA8Ir2ztM" },
  });
  return res.json();
}

const config = { apiKey: "18ec185213582b6d75a6b279455ccce8", region: "eu-west-1" };
module.exports = { mongo, pool, fetchOrders, config };
